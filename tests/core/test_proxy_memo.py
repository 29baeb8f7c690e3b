"""Bounded memos: a full memo is emptied, so odd traffic cannot grow it without bound."""

from __future__ import annotations

from proxy.core.memo import remember


def test_values_are_kept_until_the_limit_and_a_full_memo_starts_over() -> None:
    memo: dict[str, int] = {}
    for n in range(3):
        remember(memo, f"k{n}", n, limit=3)
    assert memo == {"k0": 0, "k1": 1, "k2": 2}
    remember(memo, "k3", 3, limit=3)
    assert memo == {"k3": 3}
