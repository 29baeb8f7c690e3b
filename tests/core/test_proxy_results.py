"""One table for an answer's Cache-Status and metric label (`proxy.core.results.classify`)."""

from __future__ import annotations

import pytest

from proxy.core.policy import Lookup, Verdict
from proxy.core.results import Fwd, Served, classify, fwd_of

ROWS = [
    (Served(Fwd.HIT, cached=True, entry=True, ttl=42), "hit", b"n; hit; ttl=42"),
    (
        Served(Fwd.SERVED_STALE, cached=True, entry=True, ttl=-3),
        "stale",
        b"n; hit; ttl=-3; detail=stale-while-revalidate",
    ),
    (
        Served(Fwd.STALE, entry=True, failed=True),
        "stale",
        b"n; fwd=stale; detail=stale-if-error",
    ),
    (
        Served(Fwd.MISS, entry=True, stored=True, fwd_status=200),
        "miss",
        b"n; fwd=miss; fwd-status=200; stored",
    ),
    (
        Served(Fwd.MISS, entry=True, stored=True, fwd_status=200, collapsed=True),
        "collapsed",
        b"n; fwd=miss; fwd-status=200; stored; collapsed",
    ),
    (
        Served(Fwd.EPOCH, entry=True, stored=True, fwd_status=304),
        "revalidated",
        b"n; fwd=stale; fwd-status=304; stored; detail=epoch",
    ),
    (
        Served(Fwd.MISS, entry=True, warned=True, fwd_status=200),
        "stale",
        b"n; fwd=miss; fwd-status=200",
    ),
    (Served(Fwd.MISS, fwd_status=404), "miss", b"n; fwd=miss; fwd-status=404"),
    (Served(Fwd.MISS, failed=True), "error", b"n; fwd=miss"),
    (Served(Fwd.REQUEST, failed=True), "error", b"n; fwd=stale; detail=request"),
]


@pytest.mark.parametrize(("served", "label", "status"), ROWS)
def test_each_way_an_answer_comes_about_has_one_label_and_one_cache_status(
    served: Served, label: str, status: bytes
) -> None:
    assert classify("n", served) == (label, status)


@pytest.mark.parametrize(
    ("decision", "fwd"),
    [
        (Lookup(Verdict.HIT), Fwd.HIT),
        (Lookup(Verdict.HIT, "stale"), Fwd.HIT),  # within the client's max-stale
        (Lookup(Verdict.STALE, "stale"), Fwd.SERVED_STALE),
        (Lookup(Verdict.MISS), Fwd.MISS),
        (Lookup(Verdict.REVALIDATE, "epoch"), Fwd.EPOCH),
        (Lookup(Verdict.REVALIDATE, "request"), Fwd.REQUEST),
        (Lookup(Verdict.REVALIDATE, "stale"), Fwd.STALE),
        (Lookup(Verdict.REVALIDATE, "no-cache"), Fwd.NO_CACHE),
    ],
)
def test_every_lookup_verdict_names_its_fwd(decision: Lookup, fwd: Fwd) -> None:
    assert fwd_of(decision) is fwd
