"""Flights: at most one upstream fetch per key, and every wait for one.

A request whose key is being fetched waits for that fetch here, whether it waits in the ASGI
app (`Engine.resolve`) or below ASGI (`proxy.protocol`): one table, one bound on the wait
(`coalesce_timeout_seconds`, then 504), one count (`outpost_proxy_coalesced_waiters_total`),
one rule for whether the variant a fetch stored suits a waiter (`suits`).

A fetch runs as its own task, so a client that disconnects does not cancel it. Its `Outcome`
is known once the answer's head is: a small answer is read whole first, a large one is handed
over as a `Relay` that every waiter reads while its bytes arrive (and that the fetch stores
once they are all there and pass the integrity check).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from outpost.errors import GatewayTimeout, OutpostError
from proxy.core.coalesce import FlightTable
from proxy.core.directives import CacheControl
from proxy.core.entry import Entry
from proxy.core.keys import variant_key
from proxy.core.results import Fwd, Served, classify
from proxy.upstream import UpstreamResponse

__all__ = ["Flights", "Outcome", "Relay", "RelayBroken", "Request", "describe"]

log = logging.getLogger("outpost.proxy")


@dataclass(frozen=True)
class Request:
    method: str
    key: str  # primary cache key, and the target a fetch for it sends upstream
    headers: list[tuple[bytes, bytes]]
    cache_control: CacheControl


@dataclass(frozen=True)
class Outcome:
    """What a fetch ended with (or, for a relayed body, began with); every waiter for the key
    is served from it."""

    entry: Entry | None = None  # stored or refreshed: serve from it
    response: UpstreamResponse | None = None  # an answer not to store (or its status only)
    relay: Relay | None = None  # a large answer's body, still arriving
    error: OutpostError | None = None
    fwd: Fwd = Fwd.MISS
    stored: bool = False
    too_large: bool = False  # over max_object_bytes: every requester streams it uncached
    warning: bytes | None = None  # an upstream served this stale: passed on, never stored
    collapsed: bool = False  # answered by another request's fetch (RFC 9211 `collapsed`)
    variant: str | None = None  # the key `entry` was stored under (its variant's, if it varies)
    retry: bool = False  # the flight was reserved but never fetched: ask again

    def as_collapsed(self) -> Outcome:
        """This outcome as each request that waited for it gets it; made once per fetch (a run
        start's waiters number in the thousands)."""
        copy: Outcome | None = self.__dict__.get("_collapsed")
        if copy is None:
            copy = replace(self, collapsed=True)
            object.__setattr__(self, "_collapsed", copy)
        return copy


def describe(name: str, outcome: Outcome, cached: bool, now: int) -> tuple[str, bytes]:
    """The metric label and the Cache-Status entry of the proxy `name` for an answer served
    from `outcome` (`cached`: from what was stored, without waiting for a fetch). A fetched
    outcome's does not change with time: it is worked out once for all its waiters."""
    if not cached:
        known: tuple[str, bytes] | None = outcome.__dict__.get("_described")
        if known is None:
            known = _describe(name, outcome, cached, now)
            object.__setattr__(outcome, "_described", known)
        return known
    return _describe(name, outcome, cached, now)


def _describe(name: str, outcome: Outcome, cached: bool, now: int) -> tuple[str, bytes]:
    entry = outcome.entry
    served = Served(
        fwd=outcome.fwd,
        cached=cached,
        entry=entry is not None or outcome.relay is not None,
        failed=outcome.error is not None,
        warned=outcome.warning is not None,
        collapsed=outcome.collapsed,
        stored=outcome.stored,
        fwd_status=outcome.response.status if outcome.response is not None else None,
        ttl=entry.ttl(now) if cached and entry is not None else None,
    )
    return classify(name, served)


class RelayBroken(Exception):
    """The relayed body will not be complete (the upstream broke off, or it failed its check)."""


class Relay:
    """A body being received, readable by any number of waiters while it grows.

    Bytes go to readers as they arrive, except the chunk that completes the declared length:
    it waits for `finish` (the fetch's integrity check passed), so no reader ever has the whole
    of a body that turns out wrong. One that `fail`s ends each reader's iteration with
    `RelayBroken`, and the server closes that client's connection before the declared length."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], length: int) -> None:
        self.status, self.headers, self.length = status, headers, length
        self._chunks: list[bytes] = []
        self.received = 0
        self._done = False
        self._broken: str | None = None
        self._waiting: list[asyncio.Future[None]] = []  # one per reader waiting for more

    def feed(self, chunk: bytes) -> None:
        if chunk:
            self._chunks.append(chunk)
            self.received += len(chunk)
            self._wake()

    def finish(self) -> None:
        self._done = True
        self._wake()

    def fail(self, reason: str) -> None:
        self._broken = reason
        self._wake()

    def body(self) -> bytes:
        return b"".join(self._chunks)

    def _wake(self) -> None:
        # each reader waits on a future of its own, woken in one step (through `shield` a
        # reader would run a loop turn later, after the fetch had gone on to join the body)
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)

    async def chunks(self) -> AsyncIterator[bytes]:
        sent = 0
        while True:
            if self._broken is not None:
                raise RelayBroken(self._broken)
            done = self._done  # before counting: no chunk arrives after `finish`
            ready = len(self._chunks)
            if not done and self.received >= self.length:
                ready -= 1  # complete but not yet checked: the last bytes wait for `finish`
            if sent < ready:
                while sent < ready:  # chunk by chunk: joining them would copy every byte again
                    yield self._chunks[sent]
                    sent += 1
                    if self._broken is not None:
                        raise RelayBroken(self._broken)
                continue  # more may have arrived, or `finish` come, while this reader sent
            if done:
                return
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)  # its own: a reader that leaves cancels no other's
            await waiter


_RETRY = Outcome(retry=True)
Fetch = Callable[[asyncio.Future[Outcome]], Coroutine[Any, Any, Outcome]]


class Flights:
    def __init__(self, *, timeout: float, upstreams: list[str], on_wait: Callable[[], None]):
        self.timeout = timeout
        self._upstreams = upstreams  # named in the 504 a waiter gets
        self._on_wait = on_wait  # counts every request that waits for another's fetch
        self._table: FlightTable[asyncio.Future[Outcome]] = FlightTable(
            lambda: asyncio.get_running_loop().create_future()
        )
        self._tasks: set[asyncio.Task[Outcome]] = set()

    def __len__(self) -> int:
        return len(self._table)

    async def join(self, key: str, fwd: Fwd, fetch: Fetch) -> Outcome:
        """The outcome of the fetch for `key`: started with `fetch` if none is in flight, else
        the one in flight, waited for at most `timeout`."""
        flight, leader = self._table.join(key)
        if leader:
            self._start(key, fwd, fetch, flight.result)
        else:
            self._on_wait()
        result = flight.result
        if not result.done() and not await self._wait(result):
            return self.waited_too_long(fwd)
        outcome = result.result()
        return outcome if leader else outcome.as_collapsed()

    async def _wait(self, result: asyncio.Future[Outcome]) -> bool:
        """Wait for `result` at most `timeout`, without cancelling it if this request goes
        (what `wait_for(shield(...))` does, at a fraction of its cost per waiter); whether it
        is done."""
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        timer = loop.call_later(self.timeout, wake)
        result.add_done_callback(wake)
        try:
            await woken
        finally:
            timer.cancel()
            result.remove_done_callback(wake)
        return result.done()

    def start(self, key: str, fwd: Fwd, fetch: Fetch) -> asyncio.Future[Outcome] | None:
        """Fetch `key` in the background (stale-while-revalidate; a miss `proxy.protocol`
        leads), unless already under way: the future of its outcome, or None if it was."""
        flight, leader = self._table.join(key)
        if not leader:
            return None
        self._start(key, fwd, fetch, flight.result)
        return flight.result

    def reserve(self, key: str) -> bool:
        """Hold the flight for `key` for the request about to lead it (`proxy.protocol`
        reserves it when the request's head arrives, before its ASGI task has run, so the
        requests for the key in the same burst wait for its fetch); it must `join` or
        `release` it. False when a flight is in the air already."""
        return self._table.reserve(key)

    def release(self, key: str) -> None:
        """The request that reserved `key` is done; if it never fetched (the shared tier had
        the answer, or it failed first), those waiting are told to ask again."""
        flight = self._table.flights.get(key)
        if flight is not None and not flight.started:
            self._table.land(key)
            flight.result.set_result(_RETRY)

    def watch(self, key: str) -> asyncio.Future[Outcome] | None:
        """The flight in the air for `key`, joined as a waiter (for `proxy.protocol`, which
        waits below ASGI and then calls `settled`), or None; never starts one."""
        flight = self._table.wait(key)
        if flight is None:
            return None
        self._on_wait()
        return flight.result

    def settled(self, watched: asyncio.Future[Outcome]) -> Outcome:
        """What a request that `watch`ed gets once the fetch landed or `timeout` passed."""
        if watched.done() and not watched.cancelled():
            return watched.result().as_collapsed()
        return self.waited_too_long(Fwd.MISS)  # only misses are watched

    def waited_too_long(self, fwd: Fwd) -> Outcome:
        """What a request gets that waited `timeout` for a fetch still in flight."""
        detail = f"the upstream fetch took longer than {self.timeout} s"
        return Outcome(error=GatewayTimeout(detail, accepted=self._upstreams), fwd=fwd)

    @staticmethod
    def suits(request: Request, outcome: Outcome) -> bool:
        """Whether a fetch made for another request stored what `request` selects: not when
        the answer turned out to vary (`Vary: Accept-Encoding`) and `request` selects another
        variant than the one that was fetched and stored."""
        entry = outcome.entry
        if entry is None or not entry.vary or outcome.variant is None:
            return True
        return variant_key(request.key, entry.vary, request.headers) == outcome.variant

    def _start(self, key: str, fwd: Fwd, fetch: Fetch, result: asyncio.Future[Outcome]) -> None:
        task = asyncio.get_running_loop().create_task(fetch(result))
        self._tasks.add(task)

        def landed(done: asyncio.Task[Outcome]) -> None:
            self._tasks.discard(done)
            self._table.land(key)
            if result.done():  # handed over early: a relayed body
                return
            if done.cancelled():
                result.set_result(Outcome(error=OutpostError("fetch cancelled"), fwd=fwd))
            elif done.exception() is not None:
                log.error("fetch of %s failed", key, exc_info=done.exception())
                result.set_result(Outcome(error=OutpostError("internal error"), fwd=fwd))
            else:
                result.set_result(done.result())

        task.add_done_callback(landed)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
