"""The proxy's Prometheus metrics, labelled like its Cache-Status values."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ProxyMetrics"]

_LATENCY = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


@dataclass
class ProxyMetrics:
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "outpost_proxy_requests",
            "Answers by cache result (hit, miss, stale, revalidated, pass, error).",
            ["result"],
            registry=r,
        )
        self.revalidations = Counter(
            "outpost_proxy_revalidations",
            "Conditional requests upstream, by the status that came back.",
            ["status"],
            registry=r,
        )
        self.coalesced = Counter(
            "outpost_proxy_coalesced_waiters",
            "Requests that waited for a fetch already under way.",
            registry=r,
        )
        self.stale_served = Counter(
            "outpost_proxy_stale_served", "Stale answers served, by reason.", ["reason"], registry=r
        )
        self.upstream_errors = Counter(
            "outpost_proxy_upstream_errors",
            "Failed upstream attempts, by upstream and kind.",
            ["upstream", "kind"],
            registry=r,
        )
        self.upstream_bytes = Counter(
            "outpost_proxy_upstream_bytes", "Body bytes received from upstreams.", registry=r
        )
        self.client_bytes = Counter(
            "outpost_proxy_client_bytes", "Body bytes sent to clients.", registry=r
        )
        self.shared_store_errors = Counter(
            "outpost_proxy_shared_store_errors", "Redis (L2) failures.", registry=r
        )
        self.latency = Histogram(
            "outpost_proxy_request_seconds",
            "Time to answer, by cache result.",
            ["result"],
            buckets=_LATENCY,
            registry=r,
        )
        self.cache_bytes = Gauge(
            "outpost_proxy_cache_bytes", "Bytes held in the memory cache.", registry=r
        )
        self.cache_entries = Gauge(
            "outpost_proxy_cache_entries", "Entries held in the memory cache.", registry=r
        )
        self.epoch = Gauge("outpost_proxy_epoch", "The proxy's flush epoch.", registry=r)
        self.children = Gauge("outpost_proxy_children", "Registered child proxies.", registry=r)

    def hit_ratio(self) -> float:
        hits = self.requests.labels("hit")._value.get()
        total = sum(
            self.requests.labels(r)._value.get() for r in ("hit", "miss", "stale", "revalidated")
        )
        return hits / total if total else 0.0
