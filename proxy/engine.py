"""The driver: runs the core's verdicts against storage, upstreams and the flight table.

    request ─▶ key ─▶ lookup(verdict) ─┬─ HIT ─────────────▶ serve the entry
                                       ├─ STALE ───────────▶ serve it, revalidate behind
                                       ├─ MISS/REVALIDATE ─▶ one coalesced fetch ─▶ serve
                                       └─ PASS ────────────▶ forward as is

A fetch runs as its own task, so a client that disconnects does not cancel it; every request
for the key meanwhile waits for that one fetch (bounded, then 504). Whatever the fetch ends
with (a stored entry, an answer not to store, an error) is what each waiter is served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import assert_never

from outpost.errors import GatewayTimeout, OutpostError
from proxy.core.coalesce import FlightTable
from proxy.core.directives import CacheControl, parse_cache_control
from proxy.core.entry import Entry, make_entry
from proxy.core.epochs import EPOCH_HEADER
from proxy.core.frontier import is_frontier_path
from proxy.core.headers import get_all, get_first, with_via
from proxy.core.keys import variant_key
from proxy.core.payloads import negative_headers, payload_hash, payload_problem
from proxy.core.policy import ErrorVerdict, Verdict, after_error, is_storable, lookup
from proxy.core.serving import prepare
from proxy.core.shared import shared_request_headers
from proxy.core.status import cache_status, chain
from proxy.epoch import EpochState
from proxy.metrics import ProxyMetrics
from proxy.storage.base import VaryMarker
from proxy.storage.tiered import TieredStore
from proxy.upstream import AllUpstreamsFailed, UnsendableRequest, UpstreamResponse, Upstreams

__all__ = ["Engine", "Outcome", "Request"]

log = logging.getLogger("outpost.proxy")

SECOND = 1_000_000


@dataclass(frozen=True)
class Request:
    method: str
    key: str  # primary cache key, and the target a fetch for it sends upstream
    headers: list[tuple[bytes, bytes]]
    cache_control: CacheControl


@dataclass(frozen=True)
class Outcome:
    """What a fetch ended with; every waiter for the key is served from it."""

    entry: Entry | None = None  # stored or refreshed: serve from it
    response: UpstreamResponse | None = None  # an answer not to store
    error: OutpostError | None = None
    fwd: str = "miss"
    stored: bool = False
    too_large: bool = False  # over max_object_bytes: every requester streams it uncached
    warning: bytes | None = None  # an upstream served this stale: passed on, never stored
    collapsed: bool = False  # answered by another request's fetch (RFC 9211 `collapsed`)
    variant: str | None = None  # the key `entry` was stored under (its variant's, if it varies)


class Engine:
    def __init__(
        self,
        *,
        name: str,
        store: TieredStore,
        upstreams: Upstreams,
        epoch: EpochState,
        metrics: ProxyMetrics,
        clock: Callable[[], int],
        stale_if_error: float,
        coalesce_timeout: float,
        negative_ttl: int = 60,
        max_object: int = 64 * 1024 * 1024,
    ) -> None:
        self.name = name
        self.store = store
        self.upstreams = upstreams
        self.epoch = epoch
        self.metrics = metrics
        self.clock = clock
        self.stale_window = int(stale_if_error * SECOND)
        self.coalesce_timeout = coalesce_timeout
        self.negative_ttl = negative_ttl
        self.max_object = max_object
        self.flights: FlightTable[asyncio.Future[Outcome]] = FlightTable(
            lambda: asyncio.get_running_loop().create_future()
        )
        self._tasks: set[asyncio.Task[Outcome]] = set()
        self._own_id = f"outpost-proxy {name}".encode()

    # --- lookup ----------------------------------------------------------------------------

    async def find(self, request: Request) -> tuple[str, Entry | None]:
        """The variant key for `request` and the entry stored under it, if any."""
        stored = await self.store.get(request.key)
        if isinstance(stored, VaryMarker):
            key = variant_key(request.key, stored.vary, request.headers)
            found = await self.store.get(key)
            return key, found if isinstance(found, Entry) else None
        return request.key, stored

    async def resolve(self, request: Request) -> tuple[Outcome, bool]:
        """What to serve for a cacheable request, and whether it came from the cache."""
        key, entry = await self.find(request)
        now = self.clock()
        decision = lookup(request.method, request.cache_control, entry, now, self.epoch.value)
        match decision.verdict:
            case Verdict.HIT:
                assert entry is not None
                return Outcome(entry=entry, fwd="hit"), True
            case Verdict.STALE:
                assert entry is not None
                self._start(key, request, entry, "stale")
                self.metrics.stale_served.labels("while-revalidate").inc()
                return Outcome(entry=entry, fwd="stale-while-revalidate"), True
            case Verdict.MISS | Verdict.REVALIDATE:
                fwd = "miss" if decision.verdict is Verdict.MISS else decision.detail or "stale"
                outcome = await self._coalesced(key, request, entry, fwd)
                if outcome.collapsed and not self.suits(request, outcome):
                    return await self.resolve(request)  # its own variant: now it has a marker
                return outcome, False
            case Verdict.PASS:
                raise AssertionError("PASS requests are forwarded by the app")
            case _:
                assert_never(decision.verdict)

    # --- coalesced fetches -----------------------------------------------------------------

    async def _coalesced(
        self, key: str, request: Request, entry: Entry | None, fwd: str
    ) -> Outcome:
        flight, leader = self.flights.join(key)
        if leader:
            self._start_flight(key, request, entry, fwd, flight.result)
        else:
            self.metrics.coalesced.inc()
        try:
            outcome = await asyncio.wait_for(asyncio.shield(flight.result), self.coalesce_timeout)
        except TimeoutError:
            return self.waited_too_long(fwd)
        return outcome if leader else replace(outcome, collapsed=True)

    def waited_too_long(self, fwd: str) -> Outcome:
        """What a request gets that waited `coalesce_timeout` for a fetch still in flight."""
        detail = f"the upstream fetch took longer than {self.coalesce_timeout} s"
        return Outcome(error=GatewayTimeout(detail, accepted=self.upstreams.urls), fwd=fwd)

    def _start(self, key: str, request: Request, entry: Entry, fwd: str) -> None:
        """Revalidate in the background (stale-while-revalidate), unless already under way."""
        flight, leader = self.flights.join(key)
        if leader:
            self._start_flight(key, request, entry, fwd, flight.result)

    def _start_flight(
        self,
        key: str,
        request: Request,
        entry: Entry | None,
        fwd: str,
        result: asyncio.Future[Outcome],
    ) -> None:
        task = asyncio.get_running_loop().create_task(self._fetch(key, request, entry, fwd))
        self._tasks.add(task)

        def landed(done: asyncio.Task[Outcome]) -> None:
            self._tasks.discard(done)
            self.flights.land(key)
            if done.cancelled():
                result.set_result(Outcome(error=OutpostError("fetch cancelled"), fwd=fwd))
            elif done.exception() is not None:
                log.error("fetch of %s failed", key, exc_info=done.exception())
                result.set_result(Outcome(error=OutpostError("internal error"), fwd=fwd))
            else:
                result.set_result(done.result())

        task.add_done_callback(landed)

    async def _fetch(self, key: str, request: Request, entry: Entry | None, fwd: str) -> Outcome:
        headers = self._upstream_headers(request, entry)
        request_time = self.clock()
        digest = payload_hash(request.key)
        check = None if digest is None else self._payload_check(digest)
        try:
            response = await self.upstreams.fetch("GET", request.key, headers, check=check)
        except AllUpstreamsFailed as error:
            return self._after_error(entry, error, fwd)
        except UnsendableRequest as error:  # built from the key alone: the key is at fault
            return Outcome(error=error, fwd=fwd)
        response_time = self.clock()
        self.epoch.adopt(response.epoch)
        self.metrics.upstream_bytes.inc(len(response.body))
        epoch = self.epoch.value
        if response.status == 304 and entry is not None:
            refreshed = entry.refreshed(response.headers, request_time, response_time, epoch)
            if digest is not None and refreshed.status != 200:
                refreshed = self._negative(refreshed)
            warning = get_first(response.headers, b"warning")
            if warning is not None:  # the upstream could not validate either: serve, keep stale
                return Outcome(
                    entry=refreshed, fwd=fwd, response=_status_only(response), warning=warning
                )
            variant = await self._put(key, request, refreshed)
            self.metrics.revalidations.labels("304").inc()
            return Outcome(
                entry=refreshed,
                fwd=fwd,
                stored=True,
                response=_status_only(response),
                variant=variant,
            )
        if entry is not None:
            self.metrics.revalidations.labels(str(response.status)).inc()
        if response.rest is not None:
            if response.close is not None:
                await response.close()  # type: ignore[misc]
            return Outcome(fwd=fwd, too_large=True)
        if digest is not None and response.status != 200:
            response.headers = negative_headers(response.headers, self.negative_ttl)
        response_cc = parse_cache_control(*get_all(response.headers, b"cache-control"))
        if not is_storable(
            "GET",
            response.status,
            request.cache_control,
            response_cc,
            response.headers,
            authorized=False,
        ):
            return Outcome(response=response, fwd=fwd)
        fresh = make_entry(
            response.status, response.headers, response.body, request_time, response_time, epoch
        )
        variant = await self._put(key, request, fresh)
        return Outcome(
            entry=fresh,
            fwd=fwd,
            stored=True,
            response=_status_only(response),
            warning=get_first(response.headers, b"warning"),
            variant=variant,
        )

    def _payload_check(self, digest: str) -> Callable[[UpstreamResponse], str | None]:
        """Payload bytes must hash to the name they are asked by: integrity end to end."""

        def check(response: UpstreamResponse) -> str | None:
            return payload_problem(
                digest, response.status, response.headers, response.body, limit=self.max_object
            )

        return check

    def _negative(self, entry: Entry) -> Entry:
        """A negative payload answer refreshed by a 304: capped again (`negative_headers`)."""
        headers = negative_headers(entry.headers, self.negative_ttl)
        fresh = make_entry(
            entry.status, headers, entry.body, entry.request_time, entry.response_time, entry.epoch
        )
        return replace(fresh, initial_age=entry.initial_age)

    def _after_error(self, entry: Entry | None, error: AllUpstreamsFailed, fwd: str) -> Outcome:
        if after_error(entry, self.clock(), self.stale_window) is ErrorVerdict.SERVE_STALE:
            self.metrics.stale_served.labels("if-error").inc()
            return Outcome(entry=entry, error=error, fwd="stale")
        return Outcome(error=error, fwd=fwd)

    async def _put(self, key: str, request: Request, entry: Entry) -> str:
        """Store `entry` (and, if it varies, the marker that says on what); its key."""
        keep_for = (entry.freshness + max(self.stale_window, entry.stale_if_error)) // SECOND + 1
        if entry.vary:
            await self.store.put(request.key, VaryMarker(entry.vary), keep_for)
            key = variant_key(request.key, entry.vary, request.headers)
        await self.store.put(key, entry, keep_for)
        return key

    @staticmethod
    def suits(request: Request, outcome: Outcome) -> bool:
        """Whether a fetch made for another request stored what `request` selects: not when
        the answer turned out to vary (`Vary: Accept-Encoding`) and `request` selects another
        variant than the one that was fetched and stored."""
        entry = outcome.entry
        if entry is None or not entry.vary or outcome.variant is None:
            return True
        return variant_key(request.key, entry.vary, request.headers) == outcome.variant

    def _upstream_headers(self, request: Request, entry: Entry | None) -> list[tuple[bytes, bytes]]:
        """A shared fetch's fields: from the key and the variant, never one client's others."""
        frontier = is_frontier_path(request.key)
        asked = request.cache_control
        headers = shared_request_headers(
            request.headers, asked, frontier=frontier, own_id=self._own_id
        )
        if entry is not None and not asked.no_cache:  # a reload fetches the whole answer again
            if entry.etag is not None:
                headers.append((b"if-none-match", entry.etag))
            if entry.last_modified is not None:
                headers.append((b"if-modified-since", entry.last_modified))
        return with_via(headers, self.name)

    # --- responses -------------------------------------------------------------------------

    def entry_headers(self, entry: Entry, now: int, status: bytes) -> list[tuple[bytes, bytes]]:
        """Headers for a stored entry: its own, Via, Content-Length, Age, Cache-Status, epoch."""
        if entry.serving is None:
            entry = prepare(entry, self.name)
        assert entry.serving is not None
        return [
            *entry.serving.prefix,
            (b"age", b"%d" % (entry.age(now) // SECOND)),
            (b"cache-status", chain(entry.serving.upstream_status, status)),
            (EPOCH_HEADER, b"%d" % self.epoch.value),
        ]

    def status_for(self, outcome: Outcome, cached: bool, now: int) -> bytes:
        entry = outcome.entry
        if cached and entry is not None:
            ttl = entry.ttl(now)
            if outcome.fwd == "hit":
                return cache_status(self.name, hit=True, ttl=ttl)
            return cache_status(self.name, hit=True, ttl=ttl, detail=outcome.fwd)
        fwd_status = outcome.response.status if outcome.response is not None else None
        if outcome.error is not None and entry is not None:
            return cache_status(self.name, fwd="stale", detail="stale-if-error")
        stale = outcome.fwd in ("epoch", "request", "stale", "no-cache")
        return cache_status(
            self.name,
            fwd="stale" if stale else "miss",
            fwd_status=fwd_status,
            stored=outcome.stored,
            collapsed=outcome.collapsed,
            detail=outcome.fwd if stale else None,
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _status_only(response: UpstreamResponse) -> UpstreamResponse:
    """Keep the upstream's status for Cache-Status without holding its body twice."""
    return UpstreamResponse(response.status, [], b"", response.upstream, response.epoch)
