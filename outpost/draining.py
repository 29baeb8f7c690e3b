"""Whether this server is shutting down, for requests that would otherwise hold it up.

uvicorn's graceful shutdown waits for every request in progress to answer; a long poll of the
change feed may wait 25 s or more for something new. uvicorn tells each connection when the
shutdown begins (`shutdown()`, which `outpost.connections.LimitedProtocol` passes on here), and
a long poll then answers at once with what it has, so the reader resumes from its position on
another server, and the process stops in a moment.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["begin", "is_draining", "wait_until"]

_draining = False
_waiters: set[asyncio.Future[None]] = set()


def begin() -> None:
    """The server began to shut down (idempotent)."""
    global _draining
    _draining = True
    for waiter in list(_waiters):
        if not waiter.done():
            waiter.set_result(None)


def is_draining() -> bool:
    return _draining


async def wait_until(moved: asyncio.Future[None], timeout: float) -> None:
    """Wait for `moved` (not cancelling it: others may wait for it too), at most `timeout`
    seconds, and no longer once the server is shutting down."""
    if _draining:
        return
    drained = asyncio.get_running_loop().create_future()
    _waiters.add(drained)
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await asyncio.wait({moved, drained}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        _waiters.discard(drained)
        drained.cancel()
