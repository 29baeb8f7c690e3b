"""The proxy's Prometheus metrics, labelled like its Cache-Status values.

Answers are tallied in plain integers (`Tally.count`, about a microsecond, cheap enough for the
hit path) and turned into Prometheus families only when `/_outpost/metrics` is scraped. Each
worker process has its own registry, so the process metrics describe the worker scraped.
"""

from __future__ import annotations

import platform
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

import outpost

__all__ = ["RESULTS", "ProxyMetrics", "Tally"]

BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
RESULTS = ("hit", "collapsed", "miss", "stale", "revalidated", "pass", "error")

# A `_created` gauge per counter and histogram repeats its help text and doubles the series;
# nothing reads them (rate() copes with restarts), so the exposition leaves them out.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Tally(Collector):
    """Answers by result: count, body bytes, latency buckets."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(RESULTS, 0)
        self.sums = dict.fromkeys(RESULTS, 0.0)
        self.buckets = {r: [0] * (len(BOUNDS) + 1) for r in RESULTS}
        self.bytes = 0
        self.fast_hits = 0
        self.fast_collapsed = 0
        self.fast_led = 0
        self.waiters = 0  # requests that waited for a fetch already under way

    def count(self, result: str, seconds: float, size: int) -> None:
        self.counts[result] += 1
        self.sums[result] += seconds
        self.buckets[result][bisect_left(BOUNDS, seconds)] += 1
        self.bytes += size

    def count_fast_hit(self, seconds: float, size: int) -> None:
        """A hit answered below ASGI (`proxy.protocol`): a hit, and counted apart as well."""
        self.count("hit", seconds, size)
        self.fast_hits += 1

    def count_fast_collapsed(self, seconds: float, size: int) -> None:
        """A request that waited below ASGI for another one's fetch and was answered there."""
        self.count("collapsed", seconds, size)
        self.fast_collapsed += 1

    def count_fast_led(self, result: str, seconds: float, size: int) -> None:
        """A request whose head started the fetch of its URL below ASGI, answered there."""
        self.count(result, seconds, size)
        self.fast_led += 1

    def count_waiter(self) -> None:
        """A request joined a fetch already under way (a plain int: prometheus_client's
        counters take a lock per increment, and a run start has thousands of waiters)."""
        self.waiters += 1

    def totals(self) -> tuple[int, int]:
        """Cacheable answers (hit, collapsed, miss, stale, revalidated) so far, and how many of
        them were hits or collapsed: what `hit_ratio` divides, and what the dashboard plots."""
        counts = self.counts
        served = sum(counts[r] for r in ("hit", "collapsed", "miss", "stale", "revalidated"))
        return served, counts["hit"] + counts["collapsed"]

    def hit_ratio(self) -> float:
        """Share of cacheable answers that cost no upstream request of their own: hits, and
        requests collapsed into another one's fetch."""
        served, hits = self.totals()
        return hits / served if served else 0.0

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "outpost_proxy_requests",
            "Answers by cache result (hit, collapsed, miss, stale, revalidated, pass, error).",
            labels=["result"],
        )
        latency = HistogramMetricFamily(
            "outpost_proxy_request_seconds", "Time to answer, by cache result.", labels=["result"]
        )
        for result in RESULTS:
            requests.add_metric([result], self.counts[result])
            cumulative, buckets = 0, []
            for bound, hits in zip((*BOUNDS, float("inf")), self.buckets[result], strict=True):
                cumulative += hits
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            latency.add_metric([result], buckets, self.sums[result])
        yield requests
        yield latency
        yield CounterMetricFamily(
            "outpost_proxy_client_bytes", "Body bytes sent to clients.", value=self.bytes
        )
        yield CounterMetricFamily(
            "outpost_proxy_fast_hits",
            "Hits written by the HTTP protocol itself, without the ASGI app (also in requests).",
            value=self.fast_hits,
        )
        yield CounterMetricFamily(
            "outpost_proxy_fast_collapsed",
            "Requests that waited for another one's fetch and were written by the HTTP protocol"
            " itself, without the ASGI app (also in requests, as collapsed).",
            value=self.fast_collapsed,
        )
        yield CounterMetricFamily(
            "outpost_proxy_fast_led",
            "Misses whose fetch the HTTP protocol started as their head arrived, answered by"
            " it without the ASGI app (also in requests, as miss).",
            value=self.fast_led,
        )
        yield CounterMetricFamily(
            "outpost_proxy_coalesced_waiters",
            "Requests that waited for a fetch already under way.",
            value=self.waiters,
        )


@dataclass
class ProxyMetrics:
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        r = self.registry
        ProcessCollector(registry=r)  # memory, CPU, open files of this worker
        Info("outpost_build", "The running Outpost: version, Python, role.", registry=r).info(
            {"version": outpost.__version__, "python": platform.python_version(), "role": "proxy"}
        )
        self.access_log_dropped = Counter(
            "outpost_access_log_dropped",
            "Access-log records dropped because the writer fell too far behind.",
            registry=self.registry,
        )
        self.answers = Tally()
        r.register(self.answers)
        self.revalidations = Counter(
            "outpost_proxy_revalidations",
            "Conditional requests upstream, by the status that came back.",
            ["status"],
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
        self.shared_store_errors = Counter(
            "outpost_proxy_shared_store_errors", "Redis (L2) failures.", registry=r
        )
        self.shared_store_rejected = Counter(
            "outpost_proxy_shared_store_rejected",
            "Redis (L2) entries dropped because their signature did not match.",
            registry=r,
        )
        self.admin_refused = Counter(
            "outpost_proxy_admin_refused",
            "Admin commands refused, by route and reason (token, signature, epoch).",
            ["route", "reason"],
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
        self.feed_position = Gauge(
            "outpost_proxy_feed_position",
            "The last change-feed position this proxy applied (its objects held).",
            registry=r,
        )
        self.feed_lag_entries = Gauge(
            "outpost_proxy_feed_lag_entries",
            "Feed positions the upstream has told of that this proxy has not applied yet.",
            registry=r,
        )
        self.feed_lag_seconds = Gauge(
            "outpost_proxy_feed_lag_seconds",
            "From the last applied entry's commit at the origin to when it was applied here.",
            registry=r,
        )
        self.feed_prefetched = Counter(
            "outpost_proxy_feed_prefetched",
            "Objects fetched because the feed announced them, by result (held, failed).",
            ["result"],
            registry=r,
        )
        self.feed_problems = Counter(
            "outpost_proxy_feed_problems",
            "Feed polls that failed, by kind (unreachable, unreadable, resync; globaltag: a"
            " subscribed global tag's map could not be read).",
            ["kind"],
            registry=r,
        )

    def hit_ratio(self) -> float:
        return self.answers.hit_ratio()
