"""The Frontier bulkhead: a bounded number of Frontier requests at once, on their own threads.

Frontier SQL is anyone's SQL. Its requests take a slot (planning and database work both), run on
threads of their own limiter (not the default one the read API's threads come from) and on their
own engine, so `/v1` reads never wait behind them. A request that finds no free slot within a
short wait is turned away with 503 and Retry-After (a proxy or frontier_client tries the next
server) instead of queueing without bound.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
from anyio import to_thread

from outpost.errors import ServiceUnavailable

__all__ = ["Bulkhead"]

T = TypeVar("T")

RETRY_AFTER_SECONDS = 1


class Bulkhead:
    def __init__(self, size: int, wait_seconds: float) -> None:
        self.size = size
        self.wait_seconds = wait_seconds
        self._slots = anyio.Semaphore(size)
        self._threads = anyio.CapacityLimiter(size)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot; ServiceUnavailable if none frees up within the wait."""
        acquired = False
        with anyio.move_on_after(self.wait_seconds):  # only the wait: never the work itself
            await self._slots.acquire()
            acquired = True
        if not acquired:
            raise ServiceUnavailable(
                f"all {self.size} Frontier query slots are busy; retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        try:
            yield
        finally:
            self._slots.release()

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """`function(*args)` on a thread of the bulkhead's own limiter."""
        return await to_thread.run_sync(function, *args, limiter=self._threads)
