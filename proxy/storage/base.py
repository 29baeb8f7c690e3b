"""The storage protocol and what is stored.

A key holds either an `Entry` or, for a response that carries `Vary`, a `VaryMarker` naming
the request fields that select the variant; the variant itself lives under its variant key.
How long a store keeps something (`keep_for`, seconds) is decided by the policy, not the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from proxy.core.entry import Entry

__all__ = ["MARKER_SECONDS", "Store", "Stored", "VaryMarker"]

# A varied URL's marker outlives its variants: it says which of them an invalidation hid.
MARKER_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class VaryMarker:
    vary: tuple[bytes, ...]
    # When an unsafe request invalidated the URL (RFC 9111 §4.4), µs: variants stored before
    # then are not used. Their keys hold the values of open fields, so they cannot be listed
    # and deleted one by one.
    invalidated: int = 0

    def hides(self, entry: object) -> bool:
        """Whether `entry`, stored under one of this marker's variants, predates an
        invalidation of the URL."""
        return self.invalidated > 0 and getattr(entry, "response_time", 0) <= self.invalidated

    @property
    def size(self) -> int:
        return 64 + sum(len(v) for v in self.vary)


Stored = Entry | VaryMarker


class Store(Protocol):
    async def get(self, key: str) -> Stored | None: ...

    async def put(self, key: str, value: Stored, keep_for: int) -> None: ...

    async def delete(self, key: str) -> None: ...
