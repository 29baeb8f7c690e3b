"""The dashboard's memory (`proxy.core.history`): rings stay bounded, rates come from successive
totals (a restart or a missed sample invents no figure), a child's figures are plain bounded
integers or nothing, and the flush history keeps its last flushes with their laggards cut and
redacted."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.history import (
    MAX_FIGURE,
    BadFigures,
    ChildFigures,
    Figures,
    FlushHistory,
    Ring,
    Sample,
    parse_figures,
    series,
    slots_for,
    subtree,
)

S = 1_000_000  # microseconds
T0 = 1_800_000_000 * S


def ring_of(*rows: tuple[float, int, int], size: int = 120) -> Ring:
    ring = Ring(size)
    for seconds, requests, hits in rows:
        ring.add(T0 + int(seconds * S), requests, hits, 1)
    return ring


def test_a_ring_keeps_its_last_samples_only() -> None:
    ring = Ring(120, cache_bytes=True)
    for index in range(500):
        ring.add(T0 + index * 5 * S, index * 10, index * 5, index // 100, index * 1000)
    samples = ring.samples()
    assert len(ring) == len(samples) == 120
    assert samples[0] == Sample(T0 + 380 * 5 * S, 3800, 1900, 3, 380_000)
    assert ring.latest() == Sample(T0 + 499 * 5 * S, 4990, 2495, 4, 499_000)
    assert slots_for(5) == 120 and slots_for(0.001) == 600 and slots_for(10_000) == 2


def test_samples_closer_than_the_gap_replace_the_newest() -> None:
    ring = Ring(10, min_gap=5 * S)
    for seconds, requests in ((0, 0), (10, 100), (12, 120), (14, 140), (20, 200)):
        ring.add(T0 + seconds * S, requests, 0, 0)
    assert [(s.at - T0) // S for s in ring.samples()] == [0, 14, 20]
    assert ring.series(T0 + 20 * S, 5, 3).request_rate == [None, 10.0, 10.0]


def test_rates_and_hit_ratios_come_from_successive_totals() -> None:
    ring = ring_of((0, 0, 0), (5, 50, 25), (10, 150, 150), (15, 150, 150))
    plotted = ring.series(T0 + 15 * S, 5, 4)
    assert plotted.request_rate == [None, 10.0, 20.0, 0.0]
    assert plotted.hit_ratio == [None, 0.5, 1.0, None]  # no answers: no ratio
    assert series(ring.samples(), T0 + 15 * S, 5, 4) == plotted
    assert plotted.document()["step_seconds"] == 5


def test_a_restart_leaves_its_interval_without_a_figure() -> None:
    ring = ring_of((0, 1000, 900), (5, 1100, 990), (10, 20, 10), (15, 70, 60))
    plotted = ring.series(T0 + 15 * S, 5, 4)
    assert plotted.request_rate == [None, 20.0, None, 10.0]
    assert plotted.hit_ratio == [None, 0.9, None, 1.0]


def test_missed_samples_leave_gaps_and_the_long_interval_is_averaged() -> None:
    ring = ring_of((0, 0, 0), (5, 50, 0), (30, 300, 300))  # 25 s without a sample
    plotted = ring.series(T0 + 30 * S, 5, 7)
    assert plotted.request_rate == [None, 10.0, None, None, None, None, 10.0]
    assert plotted.hit_ratio == [None, 0.0, None, None, None, None, 1.0]


def test_samples_older_than_the_window_and_a_clock_step_give_nothing() -> None:
    ring = ring_of((0, 0, 0), (5, 10, 0), (5, 20, 0), (3, 30, 0))
    assert ring.series(T0 + 1000 * S, 5, 4).request_rate == [None] * 4
    late = ring.series(T0 + 5 * S, 5, 2)
    assert late.request_rate == [None, 2.0]  # the two steps that did not advance: skipped


@given(
    st.lists(
        st.tuples(st.integers(0, 10**7), st.integers(0, 10**12), st.integers(0, 10**12)),
        max_size=40,
    )
)
def test_any_samples_give_finite_non_negative_figures_in_range(
    rows: list[tuple[int, int, int]],
) -> None:
    ring = Ring(30)
    for at, requests, hits in rows:
        ring.add(T0 + at, requests, min(hits, requests), 0)
    plotted = ring.series(T0 + 10**7, 1, 11)
    assert len(plotted.request_rate) == len(plotted.hit_ratio) == 11
    assert all(v is None or v >= 0 for v in plotted.request_rate)
    assert all(v is None or 0 <= v <= 1 for v in plotted.hit_ratio)
    assert len(ring) <= 30


def test_figures_are_bounded_integers_and_an_older_childs_count_it_alone() -> None:
    assert parse_figures({"requests": 10, "hits": 7, "epoch": 3, "other": "ignored"}) == Figures(
        10, 7, 3, caches=1, unhealthy=0
    )
    most = {"requests": MAX_FIGURE, "hits": MAX_FIGURE, "epoch": MAX_FIGURE}
    top = parse_figures({**most, "caches": MAX_FIGURE, "unhealthy": MAX_FIGURE - 1})
    assert top.document() == {**most, "caches": MAX_FIGURE, "unhealthy": MAX_FIGURE - 1}


def test_a_subtree_counts_every_cache_below_and_those_its_parents_find_late() -> None:
    site_a = Figures(0, 0, 0, caches=501, unhealthy=3)  # a site with 500 nodes, 3 of them late
    quiet = None  # a child that reports no figures counts alone
    assert subtree([]) == (1, 0)
    assert subtree([(site_a, True), (quiet, True)]) == (503, 3)
    assert subtree([(site_a, False), (quiet, False)]) == (503, 5)
    huge = Figures(0, 0, 0, caches=MAX_FIGURE, unhealthy=MAX_FIGURE - 1)
    caches, unhealthy = subtree([(huge, False)] * 3)  # liars cannot push it past the bound
    assert caches == MAX_FIGURE and unhealthy < caches


HOSTILE: list[Any] = [
    -1,
    MAX_FIGURE + 1,
    2**64,
    10**400,
    1.5,
    1e308,
    float("nan"),
    float("inf"),
    True,
    None,
    "10",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    [1],
    {"value": 1},
]


@pytest.mark.parametrize("field", ["requests", "hits", "epoch", "caches", "unhealthy"])
@pytest.mark.parametrize("value", HOSTILE, ids=repr)
def test_hostile_figures_are_refused(field: str, value: Any) -> None:
    document = {"requests": 10, "hits": 5, "epoch": 1, field: value}
    with pytest.raises(BadFigures, match=f"figures.{field}"):
        parse_figures(document)


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "figures",
        12,
        {"requests": 1, "hits": 2, "epoch": 0},
        {},
        {"requests": 1, "hits": 0, "epoch": 0, "caches": 0},
        {"requests": 1, "hits": 0, "epoch": 0, "caches": 3, "unhealthy": 3},
    ],
)
def test_figures_that_are_not_an_object_of_consistent_totals_are_refused(document: Any) -> None:
    with pytest.raises(BadFigures):
        parse_figures(document)


def test_children_figures_are_bounded_and_the_least_recently_heard_go_first() -> None:
    tracked = ChildFigures(max_children=3, samples=4)
    for index in range(5):
        tracked.record(f"node-{index}", T0 + index * S, Figures(index, 0, 0))
    assert len(tracked) == 3 and "node-0" not in tracked and "node-1" not in tracked
    tracked.record("node-2", T0 + 10 * S, Figures(10, 5, 1))  # heard again: kept longest
    tracked.record("node-5", T0 + 11 * S, Figures(0, 0, 0))
    assert "node-3" not in tracked and "node-2" in tracked
    for beat in range(20):
        tracked.record("node-2", T0 + (20 + beat) * S, Figures(beat, 0, 0))
    ring = tracked.ring("node-2")
    assert ring is not None and len(ring) == 4
    tracked.forget_before(T0 + 12 * S)  # node-4 and node-5 were last heard before
    assert sorted(["node-2"]) == [n for n in ("node-2", "node-4", "node-5") if n in tracked]
    tracked.record("node-6", T0 + 50 * S, Figures(0, 0, 0))
    tracked.keep_only(["node-6", "node-9"])
    assert len(tracked) == 1 and tracked.ring("node-2") is None


def test_a_child_ring_reaches_back_as_far_as_its_samples() -> None:
    tracked = ChildFigures(max_children=10, samples=60, min_gap=5 * S)
    for beat in range(200):  # two worker processes each beating every 10 s, 1 s apart
        at = T0 + beat * 5 * S + (beat % 2) * S
        tracked.record("node-1", at, Figures(beat * 10, beat * 5, 0))
    ring = tracked.ring("node-1")
    assert ring is not None and len(ring) == 60
    samples = ring.samples()
    assert samples[-1].at - samples[0].at >= 59 * 5 * S


def test_the_flush_history_keeps_the_last_flushes_newest_first() -> None:
    history = FlushHistory(size=20)
    for run in range(30):
        history.record(T0 + run * S, run, run + 1, acked=5, failed=[])
    runs = [record.run for record in history.records()]
    assert len(history) == 20 and runs == list(range(29, 9, -1))
    assert history.records()[0].document() == {
        "at": (T0 + 29 * S) / S,
        "run": 29,
        "epoch": 30,
        "acked": 5,
        "failed": 0,
        "laggards": [],
    }


def test_laggards_are_named_cut_and_redacted_whatever_a_child_passed_up() -> None:
    history = FlushHistory(size=2, max_laggards=3)
    failed: list[Any] = [
        {
            "name": "node-7",
            "url": "http://u:pw-secret@10.0.0.7:8081/?token=tk-secret",
            "error": "ClientConnectorError: http://u:pw-secret@10.0.0.7 " + "x" * 5000,
        },
        {"name": "<script>alert(1)</script>", "url": 12, "error": None},
        "not a failure",
        {"name": "node-9", "url": "http://10.0.0.9", "error": "status 503"},
    ]
    record = history.record(T0, 7, 3, acked=10, failed=failed)
    assert record.failed == 4 and len(record.laggards) == 3
    first, second, third = record.laggards
    assert first.name == "node-7" and "pw-secret" not in first.url and "tk-secret" not in first.url
    assert "pw-secret" not in first.error and len(first.error) <= 300
    assert (second.name, second.url, second.error) == ("(unnamed)", "", "")
    assert third.name == "(unnamed)"
