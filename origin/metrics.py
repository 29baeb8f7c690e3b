"""The origin's Prometheus metrics, one registry per app so tests can run many apps at once."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)

import outpost

__all__ = ["OriginMetrics", "route_label"]

_QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

# A `_created` gauge per counter and histogram repeats its help text and doubles the series;
# nothing reads them (rate() copes with restarts), so the exposition leaves them out.
disable_created_metrics()  # type: ignore[no-untyped-call]


def route_label(path: str) -> str:
    """A bounded label for a path: `/v1/resolve`, `/v1/tags/iovs`, `/_outpost/metrics`, `/ui`
    (every page of the conditions browser), `other`."""
    parts = path.split("/")
    if (
        len(parts) >= 3
        and parts[1] == "v1"
        and parts[2]
        in (
            "globaltags",
            "tags",
            "resolve",
            "payloads",
            "query",
            "runs",
            "diff",
        )
    ):
        if parts[2] == "tags" and len(parts) >= 5 and parts[4] in ("iovs", "lock"):
            return f"/v1/tags/{parts[4]}"
        return f"/v1/{parts[2]}"
    if path in ("/_outpost/healthz", "/_outpost/metrics"):
        return path
    if path == "/ui" or path.startswith("/ui/"):
        return "/ui"
    if len(parts) >= 3 and parts[1] and parts[2] == "Frontier":
        return "/Frontier"  # any servlet name: one label
    return "other"


@dataclass
class OriginMetrics:
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        ProcessCollector(registry=self.registry)  # memory, CPU, open files of this process
        build = Info(
            "outpost_build", "The running Outpost: version, Python, role.", registry=self.registry
        )
        build.info(
            {"version": outpost.__version__, "python": platform.python_version(), "role": "origin"}
        )
        self.access_log_dropped = Counter(
            "outpost_access_log_dropped",
            "Access-log records dropped because the writer fell too far behind.",
            registry=self.registry,
        )
        self.requests = Counter(
            "outpost_origin_requests",
            "Requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.query_seconds = Histogram(
            "outpost_origin_query_seconds",
            "Time spent in the database per request, by route.",
            ["route"],
            buckets=_QUERY_BUCKETS,
            registry=self.registry,
        )
        self.response_bytes = Counter(
            "outpost_origin_response_bytes",
            "Body bytes sent, by route.",
            ["route"],
            registry=self.registry,
        )
