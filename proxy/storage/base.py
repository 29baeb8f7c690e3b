"""The storage protocol and what is stored.

A key holds either an `Entry` or, for a response that carries `Vary`, a `VaryMarker` naming
the request fields that select the variant; the variant itself lives under its variant key.
How long a store keeps something (`keep_for`, seconds) is decided by the policy, not the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from proxy.core.entry import Entry

__all__ = ["Store", "Stored", "VaryMarker"]


@dataclass(frozen=True, slots=True)
class VaryMarker:
    vary: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return 64 + sum(len(v) for v in self.vary)


Stored = Entry | VaryMarker


class Store(Protocol):
    async def get(self, key: str) -> Stored | None: ...

    async def put(self, key: str, value: Stored, keep_for: int) -> None: ...

    async def delete(self, key: str) -> None: ...
