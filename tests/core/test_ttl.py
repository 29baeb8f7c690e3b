"""TTL classes: payloads and settled snapshots are cached forever, locked answers long, anything
that can still change short; and the Cache-Control each class is sent with."""

from __future__ import annotations

import pytest

from origin.query.ttl import FOREVER_SECONDS, TTLClass, TTLPolicy, shortest, ttl_class
from outpost.urls import (
    Filter,
    GlobalTagDiff,
    GlobalTagList,
    GlobalTagMap,
    Payload,
    PayloadInfo,
    Query,
    Resolve,
    RunList,
    RunQuery,
    TableQuery,
    TagInfo,
    TagIovs,
    TagList,
)

SECOND = 1_000_000
NOW = 1_800_000_000 * SECOND
POLICY = TTLPolicy(short_seconds=60, long_seconds=3_600, settle_seconds=10)
SETTLED = NOW - POLICY.settle_seconds * SECOND  # the newest snapshot that can no longer change


def ttl(query: Query, *, locked: bool = False, now: int = NOW) -> TTLClass:
    return ttl_class(query, locked=locked, now=now, policy=POLICY)


def pinned(snapshot: int | None) -> list[Query]:
    """Every query that can be pinned to a snapshot, pinned to `snapshot`."""
    return [TagIovs("T", snapshot=snapshot), Resolve("GT", run=5, snapshot=snapshot)]


UNPINNED: list[Query] = [
    GlobalTagList(),
    GlobalTagMap("GT"),
    TagInfo("T"),
    TagIovs("T", since=1, until=9),
    Resolve("GT", run=5),
    TableQuery("iovs", filters=(Filter("tag_name", "eq", "T"),)),
    RunList(since=5),
    TagList(name="Ecal*"),
]


@pytest.mark.parametrize("locked", [False, True])
def test_a_payload_is_cached_forever(locked: bool) -> None:
    assert ttl(Payload("ab" * 32), locked=locked) is TTLClass.FOREVER


@pytest.mark.parametrize("locked", [False, True])
def test_a_run_record_is_cached_forever(locked: bool) -> None:
    """Written once, never changed; a run without one is a 404, which is never cached."""
    assert ttl(RunQuery(500), locked=locked) is TTLClass.FOREVER


@pytest.mark.parametrize("locked", [False, True])
@pytest.mark.parametrize("snapshot", [0, SETTLED - 1, SETTLED])
def test_a_snapshot_older_than_the_settle_time_is_cached_forever(
    snapshot: int, locked: bool
) -> None:
    for query in pinned(snapshot):
        assert ttl(query, locked=locked) is TTLClass.FOREVER


@pytest.mark.parametrize("snapshot", [SETTLED + 1, NOW - SECOND, NOW, NOW + 1, NOW + 3600 * SECOND])
def test_a_snapshot_within_the_settle_time_or_in_the_future_is_not_forever(snapshot: int) -> None:
    for query in pinned(snapshot):
        assert ttl(query) is TTLClass.SHORT
        assert ttl(query, locked=True) is TTLClass.LONG


def test_a_snapshot_settles_as_the_clock_moves_on() -> None:
    query = TagIovs("T", snapshot=NOW)
    assert ttl(query, now=NOW + POLICY.settle_seconds * SECOND - 1) is TTLClass.SHORT
    assert ttl(query, now=NOW + POLICY.settle_seconds * SECOND) is TTLClass.FOREVER


def test_the_settle_time_comes_from_the_policy() -> None:
    query = Resolve("GT", run=5, snapshot=NOW - 30 * SECOND)
    assert ttl_class(query, locked=False, now=NOW, policy=TTLPolicy(settle_seconds=29)) == (
        TTLClass.FOREVER
    )
    assert ttl_class(query, locked=False, now=NOW, policy=TTLPolicy(settle_seconds=31)) == (
        TTLClass.SHORT
    )


@pytest.mark.parametrize("query", UNPINNED, ids=lambda q: type(q).__name__)
def test_a_locked_answer_without_a_snapshot_is_cached_long(query: Query) -> None:
    assert ttl(query, locked=True) is TTLClass.LONG


@pytest.mark.parametrize("query", UNPINNED, ids=lambda q: type(q).__name__)
def test_an_open_answer_without_a_snapshot_is_cached_short(query: Query) -> None:
    assert ttl(query) is TTLClass.SHORT


def test_cache_control_of_each_class_uses_the_policy_seconds() -> None:
    policy = TTLPolicy(short_seconds=42, long_seconds=4_242, settle_seconds=1)
    assert policy.cache_control(TTLClass.SHORT) == "public, max-age=42"
    assert policy.cache_control(TTLClass.LONG) == "public, max-age=4242"
    assert policy.cache_control(TTLClass.FOREVER) == (
        f"public, max-age={FOREVER_SECONDS}, immutable"
    )


def test_forever_is_a_year_whatever_the_policy() -> None:
    assert FOREVER_SECONDS == 365 * 86_400
    assert TTLPolicy(long_seconds=1).cache_control(TTLClass.FOREVER) == (
        TTLPolicy(long_seconds=10**9).cache_control(TTLClass.FOREVER)
    )


def test_the_default_policy_is_five_minutes_short_and_six_hours_long() -> None:
    assert TTLPolicy().cache_control(TTLClass.SHORT) == "public, max-age=300"
    assert TTLPolicy().cache_control(TTLClass.LONG) == "public, max-age=21600"


@pytest.mark.parametrize("locked", [False, True])
def test_a_payloads_metadata_is_cached_forever(locked: bool) -> None:
    assert ttl(PayloadInfo("ab" * 32), locked=locked) is TTLClass.FOREVER


@pytest.mark.parametrize("locked", [False, True])
def test_a_diff_is_cached_forever_only_when_both_sides_are_settled_snapshots(locked: bool) -> None:
    assert ttl(GlobalTagDiff("A", "B", 0, SETTLED), locked=locked) is TTLClass.FOREVER
    for a, b in [(None, None), (0, None), (None, 0), (0, SETTLED + 1), (NOW, 0)]:
        assert ttl(GlobalTagDiff("A", "B", a, b), locked=locked) is TTLClass.SHORT


def test_a_page_of_several_answers_takes_the_shortest_class() -> None:
    assert shortest([TTLClass.FOREVER, TTLClass.LONG]) is TTLClass.LONG
    assert shortest([TTLClass.LONG, TTLClass.SHORT, TTLClass.FOREVER]) is TTLClass.SHORT
    assert shortest([TTLClass.FOREVER]) is TTLClass.FOREVER
