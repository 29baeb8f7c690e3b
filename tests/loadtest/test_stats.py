"""The load test's figures and goals, from hand-made node lines and origin counters."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.stats import compare, percentile, run_result, summarise


def line(seconds: float, finished_at: float, node_hits: int, misses: int) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "finished_at": finished_at,
        "failures": 0,
        "requests": node_hits + misses,
        "bytes": 100,
        "verified": node_hits + misses - 1,
        "payloads": node_hits + misses - 1,
        "cache": {"node": {"hit": node_hits, "miss": misses}},
        "timeline": [[0.0, 0.010, "h"]] * node_hits + [[0.0, 0.100, "m"]] * misses,
    }


def counters(requests: dict[str, float], sent: dict[str, float]) -> dict[str, dict[str, float]]:
    return {"requests": requests, "bytes": sent}


def test_run_result_counts_what_reached_the_origin() -> None:
    before = counters({"200": 10, "304": 1}, {"/v1/payloads": 5000, "/v1/resolve": 300})
    after = counters({"200": 12, "304": 4}, {"/v1/payloads": 5600, "/v1/resolve": 900})
    lines = [line(1.0, 101.0, 3, 1), line(2.0, 102.5, 4, 0)]

    result = run_result(7, 100.0, 3, lines, before, after, unique_urls=5)

    assert result["time_to_configure_s"] == pytest.approx(2.5)
    assert result["origin_requests"] == 5
    assert result["origin_not_modified"] == 3
    assert result["origin_bytes"] == 1200
    assert result["origin_payload_bytes"] == 600
    assert result["origin_requests_per_unique_url"] == 1.0
    assert result["hit_ratio"] == {"node": 7 / 8}
    assert result["request_p50_ms"] == pytest.approx(10.0)
    assert result["request_p99_ms"] == pytest.approx(100.0)


def summary(name: str, ttcs: list[float], after_flush_requests: int, p50: float) -> dict[str, Any]:
    runs = []
    for k, ttc in enumerate(ttcs):
        result = run_result(
            k,
            0.0,
            0,
            [line(p50, ttc, 1, 1)],
            counters({"200": 0}, {}),
            counters({"200": 10 if k == 0 else after_flush_requests}, {"/v1/payloads": 0}),
            unique_urls=2,
        )
        runs.append(result)
    return summarise(runs, target=name, nodes=1, node_proxies=1, workdir="-")


def test_compare_medians_ratios_and_goals() -> None:
    summaries = {
        "outpost": summary("outpost", [9.0, 3.0, 4.0], 1, 2.0),
        "squid": summary("squid", [10.0, 8.0, 9.0], 50, 4.0),
        "nginx-static": summary("nginx-static", [2.0, 2.0, 3.0], 0, 1.0),
    }

    result = compare(summaries)

    figures = result["figures"]
    assert result["medians"]["outpost"]["time_to_configure_s"] == 4.0
    assert figures["ttc_ratio"] == pytest.approx(4.0 / 9.0)
    assert figures["above_floor_ratio"] == pytest.approx((4.0 - 2.0) / (9.0 - 2.0))
    assert figures["origin_requests_after_flush_ratio"] == pytest.approx(2 / 100)
    assert figures["node_p50_ratio"] == pytest.approx(0.5)
    assert all(goal["met"] for goal in result["goals"])

    slow = dict(summaries, outpost=summary("outpost", [9.0, 8.5, 9.0], 60, 5.0))
    unmet = {goal["goal"] for goal in compare(slow)["goals"] if not goal["met"]}
    assert any("time to configure" in goal for goal in unmet)
    assert any("origin requests" in goal for goal in unmet)
    assert any("p50" in goal for goal in unmet)


def test_compare_without_squid_only_reports_medians() -> None:
    result = compare({"outpost": summary("outpost", [1.0], 0, 1.0)})
    assert "goals" not in result
    assert result["medians"]["outpost"]["time_to_configure_s"] == 1.0


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.5) == 0.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(k) for k in range(100)], 0.99) == 99.0
