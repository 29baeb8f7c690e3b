"""Cache-Status (RFC 9211): one entry per cache, parameters in a fixed order, ours last."""

from __future__ import annotations

import pytest

from proxy.core.status import cache_status, chain


def test_a_bare_entry_is_just_the_cache_name() -> None:
    assert cache_status("outpost-node-12") == b"outpost-node-12"


def test_a_hit_carries_its_remaining_ttl() -> None:
    assert cache_status("outpost-node-12", hit=True, ttl=42) == b"outpost-node-12; hit; ttl=42"


def test_a_stale_entry_has_a_negative_ttl() -> None:
    assert cache_status("n", hit=True, ttl=-3) == b"n; hit; ttl=-3"


def test_a_ttl_of_zero_is_still_written() -> None:
    assert cache_status("n", hit=True, ttl=0) == b"n; hit; ttl=0"


def test_a_forwarded_and_stored_response() -> None:
    assert cache_status("outpost-site", fwd="miss", fwd_status=200, stored=True) == (
        b"outpost-site; fwd=miss; fwd-status=200; stored"
    )


def test_a_revalidation_after_a_flush() -> None:
    assert cache_status("outpost-node-12", fwd="stale", fwd_status=304, detail="epoch") == (
        b"outpost-node-12; fwd=stale; fwd-status=304; detail=epoch"
    )


def test_a_collapsed_request() -> None:
    assert cache_status("n", fwd="miss", collapsed=True) == b"n; fwd=miss; collapsed"


def test_a_stale_if_error_hit() -> None:
    assert cache_status("outpost-site", hit=True, detail="stale-if-error") == (
        b"outpost-site; hit; detail=stale-if-error"
    )


def test_parameters_come_in_a_fixed_order() -> None:
    full = cache_status(
        "n",
        detail="d",
        collapsed=True,
        stored=True,
        ttl=1,
        fwd_status=200,
        fwd="miss",
        hit=True,
    )
    assert full == b"n; hit; fwd=miss; fwd-status=200; ttl=1; stored; collapsed; detail=d"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hit": False},
        {"fwd": None},
        {"fwd": ""},
        {"fwd_status": None},
        {"ttl": None},
        {"stored": False},
        {"collapsed": False},
        {"detail": None},
        {"detail": ""},
    ],
)
def test_unset_parameters_are_left_out(kwargs: dict[str, object]) -> None:
    assert cache_status("n", **kwargs) == b"n"  # type: ignore[arg-type]


def test_without_upstream_entries_ours_stands_alone() -> None:
    assert chain(None, b"node; hit") == b"node; hit"
    assert chain(b"", b"node; hit") == b"node; hit"


def test_our_entry_goes_after_the_upstream_ones() -> None:
    assert chain(b"origin-side; fwd=miss", b"node; hit") == b"origin-side; fwd=miss, node; hit"


def test_chaining_down_a_tree_lists_the_cache_nearest_the_origin_first() -> None:
    site = chain(None, cache_status("site", fwd="miss", stored=True))
    node = chain(site, cache_status("node", fwd="miss", stored=True))
    assert node == b"site; fwd=miss; stored, node; fwd=miss; stored"
