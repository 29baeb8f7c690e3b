"""SIGHUP reloads what can change under a running server, the way squid and nginx reload.

uvicorn handles SIGINT and SIGTERM only, and SIGHUP's default action ends the process: caches,
connections and all. `install()`, called from a server's lifespan, makes SIGHUP run every
callback registered with `on_hangup` instead (the origin re-reads its tokens file; access logs
are reopened after rotation). Callbacks run on the event loop, one after the other; one that
fails is logged and the others still run: a reload never stops a server.

With `--workers N` uvicorn's supervisor handles a SIGHUP sent to it by replacing its workers
one at a time; a SIGHUP sent to a worker process reaches that worker's callbacks here
(docs/operations.md, "Checking a configuration, reloading, purging").
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
from collections.abc import Callable

__all__ = ["install", "on_hangup", "run_callbacks"]

log = logging.getLogger("outpost.hangup")

Callback = Callable[[], object]  # its result is awaited if it is awaitable
_callbacks: list[Callback] = []
_running: set[asyncio.Task[int]] = set()  # reloads in progress, kept from the collector


def on_hangup(callback: Callback) -> Callable[[], None]:
    """Run `callback` on every SIGHUP; returns the function that unregisters it (for a
    lifespan's shutdown, so an app that stopped is not reloaded)."""
    _callbacks.append(callback)

    def forget() -> None:
        if callback in _callbacks:
            _callbacks.remove(callback)

    return forget


def install(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Handle SIGHUP on `loop` (default: the running one) by running the callbacks. False when
    the platform or thread cannot take signals (no SIGHUP, not the main thread: an app run by
    a test client); then SIGHUP keeps its default action."""
    loop = loop or asyncio.get_running_loop()
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None:
        return False
    try:  # replaces an earlier handler of ours: installing twice is harmless
        loop.add_signal_handler(hangup, _on_signal, loop)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        log.debug("SIGHUP not handled here: %s", exc)
        return False
    return True


def _on_signal(loop: asyncio.AbstractEventLoop) -> None:
    task = loop.create_task(run_callbacks())
    _running.add(task)
    task.add_done_callback(_running.discard)


async def run_callbacks() -> int:
    """Run every registered callback once; how many failed (each one is logged)."""
    log.info("SIGHUP: reloading (%d callbacks)", len(_callbacks))
    failed = 0
    for callback in list(_callbacks):
        try:
            result = callback()
            if inspect.isawaitable(result):
                await result
        except Exception:
            failed += 1
            log.exception("SIGHUP: %s failed; the server keeps running", _name(callback))
    return failed


def _name(callback: Callback) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)
