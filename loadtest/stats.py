"""The load test's figures, computed from what the nodes and the origin reported (no I/O).

    run_result(run, t0, acked, lines, before, after, unique_urls)  -> one run's figures
    summarise(results, target=…, …)                                 -> one target's summary
    compare({"outpost": …, "squid": …, "nginx-static": …})          -> ratios and goals

Per run: time to configure (run start until the last node had everything), per-node and
per-request percentiles, failures, verified bodies, hits and misses by tier, and what reached
the origin: requests (304s apart), body bytes, payload body bytes, requests per unique URL;
and the CPU seconds the caches and the load generator spent (measured by the runner).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["GOALS", "compare", "percentile", "run_result", "summarise"]

PAYLOAD_ROUTE = "/v1/payloads"


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _add_counts(total: dict[str, dict[str, int]], counts: Mapping[str, Mapping[str, int]]) -> None:
    for tier, outcomes in counts.items():
        into = total.setdefault(tier, {"hit": 0, "miss": 0})
        for outcome, n in outcomes.items():
            into[outcome] = into.get(outcome, 0) + n


def _hit_ratio(cache: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    return {
        tier: counts["hit"] / (counts["hit"] + counts["miss"])
        for tier, counts in cache.items()
        if counts["hit"] + counts["miss"]
    }


def run_result(
    run: int,
    t0: float,
    acked: int,
    lines: Sequence[Mapping[str, Any]],
    before: Mapping[str, Mapping[str, float]],
    after: Mapping[str, Mapping[str, float]],
    unique_urls: int,
    *,
    cache_cpu_s: float = 0.0,
    loadgen_cpu_s: float = 0.0,
) -> dict[str, Any]:
    """One run's figures from the nodes' `run` lines and the origin's counters around it;
    `cache_cpu_s` and `loadgen_cpu_s` are the CPU seconds the caches and Locust spent on it."""
    seconds = [line["seconds"] for line in lines]
    requests = [entry[1] for line in lines for entry in line["timeline"]]
    cache: dict[str, dict[str, int]] = {}
    for line in lines:
        _add_counts(cache, line["cache"])

    def delta(kind: str, key: str | None = None) -> float:
        if key is not None:
            return after[kind].get(key, 0.0) - before[kind].get(key, 0.0)
        return sum(after[kind].values()) - sum(before[kind].values())

    origin = delta("requests")
    return {
        "run": run,
        "flush_acked": acked,
        "nodes_reported": len(lines),
        "time_to_configure_s": max(line["finished_at"] for line in lines) - t0,
        "node_seconds": seconds,
        "node_p50_ms": percentile(seconds, 0.50) * 1000,
        "node_p95_ms": percentile(seconds, 0.95) * 1000,
        "node_p99_ms": percentile(seconds, 0.99) * 1000,
        "request_seconds": requests,
        "request_p50_ms": percentile(requests, 0.50) * 1000,
        "request_p95_ms": percentile(requests, 0.95) * 1000,
        "request_p99_ms": percentile(requests, 0.99) * 1000,
        "failures": sum(line["failures"] for line in lines),
        "requests": sum(line["requests"] for line in lines),
        "bytes": sum(line.get("bytes", 0) for line in lines),
        "verified_bodies": sum(line["verified"] for line in lines),
        "payloads_per_node": max(line["payloads"] for line in lines),
        "origin_requests": int(origin),
        "origin_not_modified": int(delta("requests", "304")),
        "origin_bytes": int(delta("bytes")),
        "origin_payload_bytes": int(delta("bytes", PAYLOAD_ROUTE)),
        "unique_urls": unique_urls,
        "origin_requests_per_unique_url": origin / unique_urls,
        "cache": cache,
        "hit_ratio": _hit_ratio(cache),
        "cache_cpu_s": cache_cpu_s,
        "loadgen_cpu_s": loadgen_cpu_s,
    }


def summarise(
    results: list[dict[str, Any]],
    *,
    target: str,
    nodes: int,
    node_proxies: int,
    workdir: str | Any,
) -> dict[str, Any]:
    """A target's summary over its runs (the per-node and per-request samples are folded into
    percentiles and dropped from the runs, which stay small enough to print as JSON)."""
    seconds = [s for result in results for s in result.pop("node_seconds")]
    requests = [s for result in results for s in result.pop("request_seconds")]
    cache: dict[str, dict[str, int]] = {}
    for result in results:
        _add_counts(cache, result["cache"])
    return {
        "target": target,
        "nodes": nodes,
        "node_proxies": node_proxies,
        "runs": results,
        "failures": sum(r["failures"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "verified_bodies": sum(r["verified_bodies"] for r in results),
        "origin_requests": sum(r["origin_requests"] for r in results),
        "origin_bytes": sum(r["origin_bytes"] for r in results),
        "unique_urls": sum(r["unique_urls"] for r in results),
        "time_to_configure_s": [r["time_to_configure_s"] for r in results],
        "p50_ms": percentile(seconds, 0.50) * 1000,
        "p95_ms": percentile(seconds, 0.95) * 1000,
        "p99_ms": percentile(seconds, 0.99) * 1000,
        "request_p50_ms": percentile(requests, 0.50) * 1000,
        "request_p95_ms": percentile(requests, 0.95) * 1000,
        "request_p99_ms": percentile(requests, 0.99) * 1000,
        "cache": cache,
        "hit_ratio": _hit_ratio(cache),
        "workdir": str(workdir),
    }


# The goals for Outpost against squid, each (key, description, test of the value).
GOALS: tuple[tuple[str, str, Any], ...] = (
    ("ttc_ratio", "time to configure outpost/squid <= 0.75", lambda v: v <= 0.75),
    ("above_floor_ratio", "time above the nginx floor outpost/squid <= 0.5", lambda v: v <= 0.5),
    (
        "origin_requests_after_flush_ratio",
        "origin requests after a flush outpost/squid <= 1",
        lambda v: v <= 1.0,
    ),
    (
        "origin_payload_bytes_after_flush",
        "payload bytes re-sent by the origin after a flush == 0",
        lambda v: v == 0,
    ),
    ("node_p50_ratio", "per-node p50 outpost/squid <= 1.0", lambda v: v <= 1.0),
    ("failures", "failures (all targets) == 0", lambda v: v == 0),
)


def _median(summary: Mapping[str, Any], key: str, runs: slice = slice(None)) -> float:
    values = [run[key] for run in summary["runs"][runs]]
    return float(statistics.median(values)) if values else 0.0


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def compare(summaries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Outpost against each peer: medians over runs, ratios, and the issue's goals where both
    squid and the nginx floor ran. "After a flush" means every run but the first (cold) one."""
    outpost = summaries["outpost"]
    medians = {
        name: {
            "time_to_configure_s": _median(summary, "time_to_configure_s"),
            "node_p50_ms": _median(summary, "node_p50_ms"),
            "node_p99_ms": _median(summary, "node_p99_ms"),
            "request_p99_ms": _median(summary, "request_p99_ms"),
            "origin_requests_after_flush": sum(r["origin_requests"] for r in summary["runs"][1:]),
            "origin_bytes_after_flush": sum(r["origin_bytes"] for r in summary["runs"][1:]),
            "origin_payload_bytes_after_flush": sum(
                r["origin_payload_bytes"] for r in summary["runs"][1:]
            ),
            "failures": summary["failures"],
            "cache_cpu_s": _median(summary, "cache_cpu_s"),
            "loadgen_cpu_s": _median(summary, "loadgen_cpu_s"),
        }
        for name, summary in summaries.items()
    }
    result: dict[str, Any] = {"medians": medians}
    squid = medians.get("squid")
    if squid is None:
        return result
    ours = medians["outpost"]
    figures: dict[str, float | None] = {
        "ttc_ratio": _ratio(ours["time_to_configure_s"], squid["time_to_configure_s"]),
        "origin_requests_after_flush_ratio": _ratio(
            ours["origin_requests_after_flush"], squid["origin_requests_after_flush"]
        )
        if squid["origin_requests_after_flush"]
        else (0.0 if not ours["origin_requests_after_flush"] else None),
        "origin_payload_bytes_after_flush": ours["origin_payload_bytes_after_flush"],
        "node_p50_ratio": _ratio(ours["node_p50_ms"], squid["node_p50_ms"]),
        "cache_cpu_ratio": _ratio(ours["cache_cpu_s"], squid["cache_cpu_s"]),
        "failures": sum(m["failures"] for m in medians.values()),
    }
    floor = medians.get("nginx-static")
    if floor is not None:
        figures["above_floor_ratio"] = _ratio(
            ours["time_to_configure_s"] - floor["time_to_configure_s"],
            squid["time_to_configure_s"] - floor["time_to_configure_s"],
        )
    if len(outpost["runs"]) < 2:  # no run after a flush: nothing to compare there
        figures.pop("origin_requests_after_flush_ratio")
        figures.pop("origin_payload_bytes_after_flush")
    result["figures"] = figures
    result["goals"] = [
        {"goal": text, "value": value, "met": value is not None and bool(test(value))}
        for key, text, test in GOALS
        for value in (figures.get(key),)
        if key in figures
    ]
    return result
