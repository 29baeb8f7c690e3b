"""Whether this server is shutting down, for requests that would otherwise hold it up.

uvicorn's graceful shutdown waits for every request in progress to answer; a long poll of the
change feed may wait 25 s or more for something new. uvicorn tells each connection when the
shutdown begins (`shutdown()`, which `outpost.connections.LimitedProtocol` passes on here), and
a long poll then answers at once with what it has, so the reader resumes from its position on
another server, and the process stops in a moment. A long poll whose reader has gone has no
connection left to be told, and would hold the shutdown for uvicorn's whole grace period:
`on_stop_signals()` (called at start-up) begins the drain on SIGTERM and SIGINT as well,
before uvicorn's own handler runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from types import FrameType
from typing import Any

__all__ = ["begin", "is_draining", "on_stop_signals", "wait_until"]

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


async def wait_until(moved: asyncio.Future[Any], timeout: float) -> None:
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


def on_stop_signals() -> None:
    """Begin draining when SIGTERM or SIGINT arrives, then pass the signal to the handler that
    was there (uvicorn's). Only from the main thread; elsewhere nothing is changed."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if getattr(previous, "_outpost_drains", False):
            continue  # installed already

        def handler(number: int, frame: FrameType | None, previous: Any = previous) -> None:
            begin()
            if callable(previous):
                previous(number, frame)
            elif previous == signal.SIG_DFL:  # what would have happened: the default action
                signal.signal(number, signal.SIG_DFL)
                os.kill(os.getpid(), number)

        handler._outpost_drains = True  # type: ignore[attr-defined]
        signal.signal(signum, handler)
