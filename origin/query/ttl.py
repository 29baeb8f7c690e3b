"""TTL classes: how long an answer may be cached, chosen from what it can still become.

    forever  payload by hash, and its metadata; a run record (written once, never changed);
             anything pinned to a snapshot in the past (a diff: both sides pinned)
    long     nothing it reads can change any more (locked tag, locked global tag of locked tags)
    short    anything that can still change; flushed before each run anyway

A snapshot counts as "in the past" only once it is `settle` older than now, so that a write
whose transaction started before the snapshot and commits after it cannot change the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from outpost.urls import GlobalTagDiff, Payload, PayloadInfo, Query, Resolve, RunQuery, TagIovs

__all__ = ["TTLClass", "TTLPolicy", "shortest", "ttl_class"]

FOREVER_SECONDS = 31_536_000


class TTLClass(StrEnum):
    FOREVER = "forever"
    LONG = "long"
    SHORT = "short"


@dataclass(frozen=True)
class TTLPolicy:
    short_seconds: int = 300
    long_seconds: int = 21_600
    settle_seconds: int = 10

    def cache_control(self, ttl: TTLClass) -> str:
        return {
            TTLClass.FOREVER: f"public, max-age={FOREVER_SECONDS}, immutable",
            TTLClass.LONG: f"public, max-age={self.long_seconds}",
            TTLClass.SHORT: f"public, max-age={self.short_seconds}",
        }[ttl]


def ttl_class(query: Query, *, locked: bool, now: int, policy: TTLPolicy) -> TTLClass:
    """The class of `query`'s answer at `now` (µs since the epoch)."""
    if isinstance(query, Payload | PayloadInfo | RunQuery):  # a missing one is a 404, never cached
        return TTLClass.FOREVER
    settled = now - policy.settle_seconds * 1_000_000
    if isinstance(query, GlobalTagDiff):
        sides = (query.a_snapshot, query.b_snapshot)
        pinned = all(s is not None and s <= settled for s in sides)
        return TTLClass.FOREVER if pinned else TTLClass.SHORT
    snapshot = query.snapshot if isinstance(query, TagIovs | Resolve) else None
    if snapshot is not None and snapshot <= settled:
        return TTLClass.FOREVER
    return TTLClass.LONG if locked else TTLClass.SHORT


_ORDER = (TTLClass.SHORT, TTLClass.LONG, TTLClass.FOREVER)


def shortest(classes: Iterable[TTLClass]) -> TTLClass:
    """The class of an answer made of several: the shortest of theirs (forever if none)."""
    return min(classes, key=_ORDER.index, default=TTLClass.FOREVER)
