"""Bounded memo dictionaries for the hot path: keys, verdicts and directives seen before.

A proxy sees a small, repeating set of URLs, client addresses and header values; remembering
what was computed for them keeps parsing off the hit path. A memo that reaches its limit is
emptied rather than evicted entry by entry: hostile or unusual traffic cannot grow it without
bound, and the common values are back after one request each.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["remember"]

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], key: K, value: V, limit: int) -> None:
    """Store `value` under `key`, first emptying `memo` if it holds `limit` entries."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
