"""The driver: runs the core's verdicts against storage, upstreams and the flights.

    request ─▶ key ─▶ lookup(verdict) ─┬─ HIT ─────────────▶ serve the entry
                                       ├─ STALE ───────────▶ serve it, revalidate behind
                                       ├─ MISS/REVALIDATE ─▶ one coalesced fetch ─▶ serve
                                       └─ PASS ────────────▶ forward as is

Every request for a key being fetched waits for that one fetch (`proxy.flights`). Whatever the
fetch ends with (a stored entry, an answer not to store, an error) is what each waiter is
served; a large cold answer is relayed to the waiters as it arrives and stored once complete.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, assert_never

from outpost.errors import GatewayTimeout
from proxy.core.entry import Entry, make_entry, response_cache_control
from proxy.core.frontier import is_frontier_path
from proxy.core.headers import get_first, with_via
from proxy.core.keys import variant_key
from proxy.core.memo import remember
from proxy.core.payloads import (
    digest_problem,
    negative_headers,
    payload_hash,
    payload_problem,
    uncoded,
)
from proxy.core.policy import ErrorVerdict, Verdict, after_error, is_storable, lookup
from proxy.core.results import Fwd, fwd_of
from proxy.core.serving import prepare
from proxy.core.shared import shared_request_headers
from proxy.core.validators import head_matches
from proxy.epoch import EpochState
from proxy.flights import Flights, Outcome, Relay, Request
from proxy.metrics import ProxyMetrics
from proxy.storage.base import MARKER_SECONDS, VaryMarker
from proxy.storage.tiered import TieredStore
from proxy.upstream import (
    AllUpstreamsFailed,
    UnsendableRequest,
    UpstreamFailure,
    UpstreamResponse,
    Upstreams,
)

__all__ = ["Engine"]

log = logging.getLogger("outpost.proxy")

SECOND = 1_000_000
# Keys whose relayed body failed (cut short, wrong bytes): their next fetch is read whole, so
# the integrity check can still fail over to the next upstream within that fetch.
READ_WHOLE_LIMIT = 10_000


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
        relay_from: int | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.upstreams = upstreams
        self.epoch = epoch
        self.metrics = metrics
        self.clock = clock
        self.stale_window = int(stale_if_error * SECOND)
        self.negative_ttl = negative_ttl
        self.max_object = max_object
        self.relay_from = relay_from
        self.flights = Flights(
            timeout=coalesce_timeout, upstreams=upstreams.urls, on_wait=metrics.answers.count_waiter
        )
        self._read_whole: dict[str, bool] = {}
        self._own_id = f"outpost-proxy {name}".encode()

    # --- lookup ----------------------------------------------------------------------------

    async def find(self, request: Request) -> tuple[str, Entry | None, int]:
        """The variant key for `request`, the entry stored under it, if any, and when the URL
        was last invalidated (its `VaryMarker`'s, µs; 0 if never)."""
        stored = await self.store.get(request.key)
        if isinstance(stored, VaryMarker):
            key = variant_key(request.key, stored.vary, request.headers)
            found = await self.store.get(key)
            usable = isinstance(found, Entry) and not stored.hides(found)
            return key, found if usable else None, stored.invalidated  # type: ignore[return-value]
        return request.key, stored, 0

    async def resolve(self, request: Request) -> tuple[Outcome, bool]:
        """What to serve for a cacheable request, and whether it came from the cache.

        Most fetches are shared: one per key, whatever waits for it, from fields the key
        selects. Three are a request's own (`_own_flight`): one with credentials, always
        fetched for it alone (§3.5); a conditional one with nothing stored, whose validators
        go up as sent (shared only with requests that send the same); a HEAD whose stored GET
        answer must be revalidated, asked with a HEAD (§4.3.5)."""
        key, entry, invalidated = await self.find(request)
        authorized = _authorized(request)
        if authorized:
            entry = None  # a stored answer may be another user's view: always asked again
        now = self.clock()
        decision = lookup(request.method, request.cache_control, entry, now, self.epoch.value)
        fwd = fwd_of(decision)
        match decision.verdict:
            case Verdict.HIT:
                assert entry is not None
                return Outcome(entry=entry, fwd=fwd), True
            case Verdict.STALE:
                assert entry is not None
                self.flights.start(key, fwd, self._fetcher(key, request, entry, fwd, invalidated))
                self.metrics.stale_served.labels("while-revalidate").inc()
                return Outcome(entry=entry, fwd=fwd), True
            case Verdict.UNAVAILABLE:
                detail = "nothing stored answers it, and the request said only-if-cached"
                return Outcome(error=GatewayTimeout(detail), fwd=fwd), False  # §5.2.1.7
            case Verdict.MISS | Verdict.REVALIDATE:
                own = _own_flight(request, entry, authorized)
                fetch = self._fetcher(key, request, entry, fwd, invalidated, own is not None)
                outcome = await self.flights.join(key if own is None else own, fwd, fetch)
                if outcome.collapsed and not self.flights.suits(request, outcome):
                    return await self.resolve(request)  # its own variant: now it has a marker
                return outcome, False
            case Verdict.PASS:
                raise AssertionError("PASS requests are forwarded by the app")
            case _:
                assert_never(decision.verdict)

    def lead(self, request: Request) -> asyncio.Future[Outcome] | None:
        """Start the shared fetch of a plain miss seen below ASGI (`proxy.hits.HitPath.watch`:
        a GET or HEAD without directives, validators or credentials, nothing stored for its
        key in memory, no shared tier to ask): what `resolve` would start for it, without
        waiting for the request's ASGI cycle. The future of the outcome, or None when a
        fetch of the key is in flight already."""
        fetch = self._fetcher(request.key, request, None, Fwd.MISS)
        return self.flights.start(request.key, Fwd.MISS, fetch)

    # --- fetches ---------------------------------------------------------------------------

    def _fetcher(
        self,
        key: str,
        request: Request,
        entry: Entry | None,
        fwd: Fwd,
        invalidated: int = 0,
        own: bool = False,
    ) -> Callable[[asyncio.Future[Outcome]], Coroutine[Any, Any, Outcome]]:
        def fetch(result: asyncio.Future[Outcome]) -> Coroutine[Any, Any, Outcome]:
            return self._fetch(key, request, entry, fwd, result, invalidated, own)

        return fetch

    async def _fetch(
        self,
        key: str,
        request: Request,
        entry: Entry | None,
        fwd: Fwd,
        result: asyncio.Future[Outcome],
        invalidated: int = 0,
        own: bool = False,
    ) -> Outcome:
        headers = self._upstream_headers(request, entry, own)
        method = "HEAD" if own and request.method == "HEAD" and entry is not None else "GET"
        request_time = self.clock()
        digest = payload_hash(request.key)
        check = None if digest is None or method == "HEAD" else self._payload_check(digest)
        relay_from = None if key in self._read_whole or own else self.relay_from
        failed: AllUpstreamsFailed | None = None
        try:
            response = await self.upstreams.fetch(
                method, request.key, headers, check=check, relay_from=relay_from
            )
        except AllUpstreamsFailed as error:
            stale = after_error(entry, self.clock(), self.stale_window)
            if error.answer is None or stale is ErrorVerdict.SERVE_STALE:
                return self._after_error(entry, error, fwd)
            failed, response = error, error.answer  # the last upstream's own answer
        except UnsendableRequest as error:  # built from the key alone: the key is at fault
            return Outcome(error=error, fwd=fwd)
        response_time = self.clock()
        self.epoch.adopt(response.epoch)
        if response.relayed:
            return await self._relay(
                key, request, response, digest, request_time, fwd, result, invalidated
            )
        self._read_whole.pop(key, None)
        self.metrics.upstream_bytes.inc(len(response.body))
        epoch = self.epoch.value
        if method == "HEAD":
            assert entry is not None
            return await self._freshen(
                key, request, entry, response, request_time, fwd, invalidated
            )
        if response.status == 304 and entry is not None:
            refreshed = entry.refreshed(response.headers, request_time, response_time, epoch)
            if digest is not None and refreshed.status != 200:
                refreshed = self._negative(refreshed)
            refreshed = prepare(refreshed, self.name)
            warning = get_first(response.headers, b"warning")
            if warning is not None:  # the upstream could not validate either: serve, keep stale
                return Outcome(
                    entry=refreshed, fwd=fwd, response=_status_only(response), warning=warning
                )
            variant = await self._put(key, request, refreshed, invalidated)
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
        if response.rest is not None:  # over max_object_bytes
            await response.close()
            return Outcome(fwd=fwd, too_large=True)
        if failed is not None and digest is not None:  # a payload's 5xx: never stored
            return Outcome(response=response, error=failed, fwd=fwd)
        if digest is not None and response.status != 200:
            response.headers = negative_headers(response.headers, self.negative_ttl)
        if not self._storable(request, response):  # passed on as it came
            return Outcome(response=response, error=failed, fwd=fwd)
        fresh = self._entry(
            response.status, response.headers, response.body, request_time, response_time, epoch
        )
        variant = await self._put(key, request, fresh, invalidated)
        return Outcome(
            entry=fresh,
            fwd=fwd,
            stored=True,
            response=_status_only(response),
            warning=get_first(response.headers, b"warning"),
            variant=variant,
        )

    async def _relay(
        self,
        key: str,
        request: Request,
        response: UpstreamResponse,
        digest: str | None,
        request_time: int,
        fwd: Fwd,
        result: asyncio.Future[Outcome],
        invalidated: int,
    ) -> Outcome:
        """Hand a large answer to the waiters now and feed them its bytes as they arrive;
        store it once it is complete and has passed its check."""
        assert response.rest is not None and response.length is not None
        relay = Relay(response.status, response.headers, response.length)
        outcome = Outcome(relay=relay, fwd=fwd, response=_status_only(response))
        result.set_result(outcome)
        # a payload is hashed as it arrives: only the digest's last step waits for the end
        hasher = hashlib.sha256() if digest is not None and uncoded(response.headers) else None
        try:
            async for chunk in response.rest:
                relay.feed(chunk)
                if hasher is not None:
                    hasher.update(chunk)
        except UpstreamFailure as exc:
            return self._relay_failed(key, relay, response, str(exc), "connect", outcome)
        except BaseException:
            relay.fail("the fetch was cancelled")
            raise
        finally:
            await response.close()
        self.metrics.upstream_bytes.inc(relay.received)
        problem = None
        if relay.received != response.length:
            problem = f"{relay.received} bytes where Content-Length said {response.length}"
        elif hasher is not None and digest is not None:
            problem = digest_problem(digest, hasher.hexdigest())
        elif digest is not None:
            check = self._payload_check(digest)
            problem = check(replace(response, body=relay.body(), rest=None))
        if problem is not None:
            return self._relay_failed(key, relay, response, problem, "integrity", outcome)
        relay.finish()
        self._read_whole.pop(key, None)
        if not self._storable(request, response):
            return outcome
        await asyncio.sleep(0)  # the readers send the last bytes before the body is joined
        fresh = self._entry(
            response.status,
            response.headers,
            relay.body(),
            request_time,
            self.clock(),
            self.epoch.value,
        )
        variant = await self._put(key, request, fresh, invalidated)
        return replace(outcome, entry=fresh, stored=True, variant=variant)

    def _entry(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        request_time: int,
        response_time: int,
        epoch: int,
    ) -> Entry:
        """A new entry, with what it sends prepared once: every waiter is served from it."""
        fresh = make_entry(status, headers, body, request_time, response_time, epoch)
        return prepare(fresh, self.name)

    def _relay_failed(
        self,
        key: str,
        relay: Relay,
        response: UpstreamResponse,
        problem: str,
        kind: str,
        outcome: Outcome,
    ) -> Outcome:
        """Break every reader's connection before the end, count the upstream's failure, and
        read the key's next fetch whole (so its check can fail over within that fetch)."""
        relay.fail(problem)
        self.upstreams.blame(response, problem, kind)
        remember(self._read_whole, key, True, READ_WHOLE_LIMIT)
        log.warning("relayed answer for %s broke off: %s", key[:200], problem)
        return outcome

    async def _freshen(
        self,
        key: str,
        request: Request,
        entry: Entry,
        response: UpstreamResponse,
        request_time: int,
        fwd: Fwd,
        invalidated: int,
    ) -> Outcome:
        """A HEAD's answer updates the stored GET answer it matches (RFC 9111 §4.3.5), as a 304
        would; one that does not match makes it stale, and the HEAD's answer is served."""
        if response.status == 200 and head_matches(entry, response.headers):
            refreshed = entry.refreshed(
                response.headers, request_time, self.clock(), self.epoch.value
            )
            refreshed = prepare(refreshed, self.name)
            variant = await self._put(key, request, refreshed, invalidated)
            return Outcome(
                entry=refreshed,
                fwd=fwd,
                stored=True,
                response=_status_only(response),
                variant=variant,
            )
        if response.status == 200:
            await self.store.delete(key)
        return Outcome(response=response, fwd=fwd)

    def _storable(self, request: Request, response: UpstreamResponse) -> bool:
        response_cc = response_cache_control(response.headers)
        return is_storable(
            "GET",
            response.status,
            request.cache_control,
            response_cc,
            response.headers,
            authorized=_authorized(request),
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

    def _after_error(self, entry: Entry | None, error: AllUpstreamsFailed, fwd: Fwd) -> Outcome:
        if after_error(entry, self.clock(), self.stale_window) is ErrorVerdict.SERVE_STALE:
            self.metrics.stale_served.labels("if-error").inc()
            return Outcome(entry=entry, error=error, fwd=Fwd.STALE)
        return Outcome(error=error, fwd=fwd)

    async def _put(self, key: str, request: Request, entry: Entry, invalidated: int = 0) -> str:
        """Store `entry` (and, if it varies, the marker that says on what, keeping when the URL
        was last invalidated: older variants stay hidden); its key."""
        keep_for = (entry.freshness + max(self.stale_window, entry.stale_if_error)) // SECOND + 1
        if entry.vary:
            marker = VaryMarker(entry.vary, invalidated)
            await self.store.put(request.key, marker, max(keep_for, MARKER_SECONDS))
            key = variant_key(request.key, entry.vary, request.headers)
        await self.store.put(key, entry, keep_for)
        return key

    def _upstream_headers(
        self, request: Request, entry: Entry | None, own: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """A shared fetch's fields: from the key and the variant, never one client's others.
        A request's own fetch with nothing stored adds its credentials and validators."""
        frontier = is_frontier_path(request.key)
        asked = request.cache_control
        headers = shared_request_headers(
            request.headers, asked, frontier=frontier, own_id=self._own_id
        )
        if own:  # credentials and validators of its own; a HEAD revalidation sends neither
            if entry is None:
                headers += [(k, v.strip(b" \t")) for k, v in request.headers if k in _OWN_FIELDS]
        elif entry is not None and not (asked.no_cache and frontier):
            # RFC 9111 §5.2.1.4: a request's no-cache is a validation, not a new fetch; a
            # Frontier client's hard refresh (`Pragma: no-cache`) fetches it whole, as squid
            if entry.etag is not None:
                headers.append((b"if-none-match", entry.etag))
            if entry.last_modified is not None:
                headers.append((b"if-modified-since", entry.last_modified))
        return with_via(headers, self.name)

    async def close(self) -> None:
        await self.flights.close()


_OWN_FIELDS = frozenset({b"authorization", b"if-none-match", b"if-modified-since"})
_own_fetches = itertools.count()


def _authorized(request: Request) -> bool:
    return any(k == b"authorization" for k, _ in request.headers)


def _own_flight(request: Request, entry: Entry | None, authorized: bool) -> str | None:
    """The flight key of a request that cannot share the key's fetch, or None when it can:
    credentials are this request's alone; a conditional request with nothing stored shares
    only with requests of the same conditions; a HEAD revalidates with a HEAD."""
    if authorized:
        return f"{request.key}\x00own {next(_own_fetches)}"
    if entry is None:
        conditions = [v for k, v in request.headers if k in _OWN_FIELDS]
        if conditions:
            return f"{request.key}\x00if " + b"\x00".join(conditions).decode("latin-1")
        return None
    if request.method == "HEAD":
        return f"{request.key}\x00head"
    return None


def _status_only(response: UpstreamResponse) -> UpstreamResponse:
    """Keep the upstream's status for Cache-Status (and its interim answers, to forward)
    without holding its body twice."""
    return UpstreamResponse(
        response.status, [], b"", response.upstream, response.epoch, interim=response.interim
    )
