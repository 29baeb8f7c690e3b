"""L1 memory in front of an optional L2 (Redis). Reads try L1, then L2 (promoting what L2
had); writes go to both. When L2 fails, the proxy keeps serving from L1 and upstream: L2 is
skipped for `retry_after` seconds, then tried again, so it reconnects by itself."""

from __future__ import annotations

import logging
from collections.abc import Callable

from proxy.storage.base import Store, Stored
from proxy.storage.memory import MemoryStore
from proxy.storage.redis import StoreUnavailable

__all__ = ["TieredStore"]

log = logging.getLogger("outpost.proxy.storage")


class TieredStore:
    def __init__(
        self,
        l1: MemoryStore,
        l2: Store | None = None,
        *,
        clock: Callable[[], int],
        retry_after: float = 5.0,
        on_l2_error: Callable[[], None] = lambda: None,
        prepare: Callable[[Stored], Stored] = lambda value: value,
    ) -> None:
        self.l1 = l1
        self._prepare = prepare  # e.g. precompute what a hit sends, once per entry
        self.l2 = l2
        self._clock = clock
        self._retry_after = int(retry_after * 1_000_000)
        self._down_until = 0
        self._on_l2_error = on_l2_error

    @property
    def l2_up(self) -> bool:
        return self.l2 is not None and self._clock() >= self._down_until

    def _failed(self, exc: StoreUnavailable) -> None:
        if self._clock() >= self._down_until:
            log.warning("shared store unavailable, serving from memory: %s", exc)
        self._down_until = self._clock() + self._retry_after
        self._on_l2_error()

    async def get(self, key: str) -> Stored | None:
        value = self.l1.peek(key)
        if value is not None or self.l2 is None or not self.l2_up:
            return value
        try:
            value = await self.l2.get(key)
        except StoreUnavailable as exc:
            self._failed(exc)
            return None
        if value is not None:
            value = self._prepare(value)
            self.l1.store(key, value)
        return value

    async def put(self, key: str, value: Stored, keep_for: int) -> None:
        self.l1.store(key, self._prepare(value))
        if self.l2 is not None and self.l2_up:
            try:
                await self.l2.put(key, value, keep_for)
            except StoreUnavailable as exc:
                self._failed(exc)

    async def delete(self, key: str) -> None:
        self.l1.discard(key)
        if self.l2 is not None and self.l2_up:
            try:
                await self.l2.delete(key)
            except StoreUnavailable as exc:
                self._failed(exc)
