"""The proxy's ASGI app: a raw ASGI hot path for cached GETs, starlette for `/_outpost/*`.

A hit costs the gate (client network and, in forward mode, destination: memoised), a key
lookup (memoised from the raw request target), one dictionary read (two for a varied answer:
its marker, then the variant the request selects), a freshness comparison and
two `send`s; everything else goes through the engine. The lifespan owns the upstream HTTP client,
the Redis connection and the heartbeat to the parent.

Every answer carries Content-Length, or has no body by definition (304, 204, HEAD): HTTP/1.0
clients (frontier_client) cannot read chunked bodies. The one answer whose length is not known
up front, an object over max_object_bytes that an upstream sends without Content-Length, is
streamed to HTTP/1.1 clients and spooled to a temporary file first for HTTP/1.0 clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import unquote

import httpx
from starlette.types import Message, Receive, Scope, Send

from outpost.errors import BadGateway, BadRequest, OutpostError, PayloadTooLarge
from outpost.limits import limits_from
from outpost.redact import SecretScrubber
from proxy.admin import admin_routes
from proxy.core.directives import CacheControl, parse_cache_control, request_cache_control
from proxy.core.entry import Entry
from proxy.core.epochs import EPOCH_HEADER
from proxy.core.frontier import is_frontier_path
from proxy.core.headers import Headers, end_to_end, get_first, with_via
from proxy.core.keys import primary_key, variant_key
from proxy.core.memo import remember
from proxy.core.serving import hit_head, hit_headers, prepare, response_head
from proxy.core.signing import Signer
from proxy.core.status import cache_status
from proxy.core.validators import not_modified
from proxy.engine import Engine, Outcome, Request
from proxy.epoch import EpochState
from proxy.gate import Gate
from proxy.metrics import ProxyMetrics
from proxy.settings import ProxySettings
from proxy.storage.base import Stored, VaryMarker
from proxy.storage.memory import MemoryStore
from proxy.storage.redis import RedisStore
from proxy.storage.tiered import TieredStore
from proxy.tree import FanOut, Registry, heartbeat
from proxy.upstream import (
    AllUpstreamsFailed,
    NoCookies,
    UnsendableRequest,
    UpstreamResponse,
    Upstreams,
)

__all__ = ["COLLAPSED", "ProxyApp", "create_app", "system_clock"]

log = logging.getLogger("outpost.proxy")
KEY_MEMO_LIMIT = 100_000
# Scope key under which `proxy.protocol` hands over the outcome of the fetch a request waited
# for below ASGI, when it cannot answer the request itself.
COLLAPSED = "outpost.collapsed"
SPOOL_CHUNK = 1024 * 1024
HTTP_1_0 = frozenset({"1.0", "1", "0.9"})  # granian reports HTTP/1.0 as "1"
STALE_WARNING = (b"warning", b'111 - "Revalidation Failed"')  # served stale: upstreams failed
_NO_CACHE = CacheControl()
_NOT_RELAYED = frozenset({b"cache-status", EPOCH_HEADER})  # each proxy writes its own
_NOT_RELAYED_COLLAPSED = _NOT_RELAYED | {b"set-cookie"}
_SPECIAL = frozenset(
    {
        b"cache-control",
        b"pragma",
        b"if-none-match",
        b"if-modified-since",
        b"authorization",
        b"cookie",
        b"range",
    }
)


def system_clock() -> int:
    return time.time_ns() // 1000


class ProxyApp:
    def __init__(
        self,
        settings: ProxySettings,
        *,
        store: TieredStore | None = None,
        upstream_client: httpx.AsyncClient | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self.settings = settings
        self.connection_limits = limits_from(settings)  # what the HTTP protocol enforces
        self.name = settings.name
        self.clock = clock or system_clock
        self.metrics = ProxyMetrics()
        state = settings.state_dir
        SecretScrubber.install(settings.secrets())  # no log line of this process shows one
        self.epoch = EpochState(
            state / "epoch" if state else None, max_step=settings.max_epoch_step
        )
        self.registry = Registry(state / "children.sqlite" if state else None)
        self._own_client = upstream_client is None
        self.client = upstream_client or httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.read_timeout_seconds, connect=settings.connect_timeout_seconds
            ),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=128),
            headers={"user-agent": f"outpost-proxy/{settings.name}"},
            trust_env=False,
        )
        self.client.cookies = NoCookies()  # fetches are shared: keep no cookie state
        self.redis = None
        if settings.redis and settings.shared_tier_key and store is None:
            self.redis = RedisStore(
                settings.redis,
                key=settings.shared_tier_key.encode(),
                on_rejected=self.metrics.shared_store_rejected.inc,
            )
        self.store = store or TieredStore(
            MemoryStore(settings.cache_size),
            self.redis,
            clock=self.clock,
            retry_after=settings.redis_retry_seconds,
            on_l2_error=self.metrics.shared_store_errors.inc,
            prepare=self._prepare,
        )
        self.l1 = self.store.l1
        self.tally = self.metrics.answers
        self.upstreams = Upstreams(
            list(settings.upstreams),
            self.client,
            self.clock,
            retries=settings.retries,
            breaker_failures=settings.breaker_failures,
            breaker_cooldown=settings.breaker_cooldown_seconds,
            max_body=settings.max_object_bytes,
            on_failure=lambda url, kind: self.metrics.upstream_errors.labels(url, kind).inc(),
        )
        self.engine = Engine(
            name=self.name,
            store=self.store,
            upstreams=self.upstreams,
            epoch=self.epoch,
            metrics=self.metrics,
            clock=self.clock,
            stale_if_error=settings.stale_if_error_seconds,
            coalesce_timeout=settings.coalesce_timeout_seconds,
            negative_ttl=settings.negative_ttl_seconds,
            max_object=settings.max_object_bytes,
        )
        self.fan_out = FanOut(
            Signer(settings.tree_signing_key) if settings.tree_signing_key else None,
            concurrency=settings.flush_concurrency,
            timeout=settings.flush_timeout_seconds,
        )
        self.admin = admin_routes(self)
        self.gate = Gate(settings)
        self._keys: dict[bytes, str | BadRequest] = {}
        # Cache-Control values that cannot turn a fresh entry away (frontier_client's
        # `max-stale=1` on every request): such requests keep the hot path.
        self._harmless: dict[bytes, bool] = {}
        self._exit: contextlib.AsyncExitStack | None = None

    def _prepare(self, value: Stored) -> Stored:
        return prepare(value, self.name) if isinstance(value, Entry) else value

    # --- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"].startswith("/_outpost/"):
                await self.admin(scope, receive, send)
                return
            if self.gate.needs_check(scope):
                admitted = self.gate.admit(scope)
                if isinstance(admitted, OutpostError):
                    status = cache_status(self.name, detail="refused")
                    await self._send_error(send, admitted, status)
                    return
                scope = admitted
            if scope["method"] in ("GET", "HEAD"):
                await self.read(scope, send)
            else:
                await self.pass_through(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def share_epoch(self, epoch: int) -> None:
        """Record a flush's epoch in the shared tier, so every proxy of the site sees it."""
        if self.redis is not None:
            await self.redis.raise_epoch(epoch)

    async def start(self) -> None:
        if self.redis is not None:  # catch up with flushes made while this proxy was down
            self.epoch.adopt(await self.redis.epoch())
        self._exit = contextlib.AsyncExitStack()
        if self.settings.parent:
            me = {"name": self.name, "url": self.settings.url}
            await self._exit.enter_async_context(
                heartbeat(
                    self.client,
                    self.settings.parent,
                    me,
                    self.settings.register_token,
                    self.settings.heartbeat_seconds,
                    self.epoch.adopt,
                )
            )

    async def stop(self) -> None:
        if self._exit is not None:
            await self._exit.aclose()
        await self.engine.close()
        if self.redis is not None:
            await self.redis.close()
        if self._own_client:
            await self.client.aclose()
        self.registry.close()
        self.epoch.close()

    # --- reads -----------------------------------------------------------------------------

    def _key(self, scope: Scope) -> str | BadRequest:
        """The primary key (also the target a shared fetch sends upstream), or why the request
        target is refused; memoised by the request target as received (path and query)."""
        raw = scope.get("raw_path") or scope["path"].encode()
        query_string = scope["query_string"]
        target = raw + b"?" + query_string if query_string else raw
        key = self._keys.get(target)
        if key is None:
            try:
                key = primary_key(raw.decode("latin-1"), query_string.decode("latin-1"))
            except BadRequest as refused:
                key = refused
            remember(self._keys, target, key, KEY_MEMO_LIMIT)
        return key

    def _plain(self, special: list[tuple[bytes, bytes]]) -> bool:
        """Whether the request's special fields are only Cache-Control values that leave a
        fresh entry servable (`max-stale`, `only-if-cached`, extensions)."""
        for name, value in special:
            if name != b"cache-control":
                return False
            plain = self._harmless.get(value)
            if plain is None:
                cc = parse_cache_control(value)
                plain = cc == CacheControl(max_stale=cc.max_stale, only_if_cached=cc.only_if_cached)
                remember(self._harmless, value, plain, KEY_MEMO_LIMIT)
            if not plain:
                return False
        return True

    def fresh_entry(
        self, key: str, headers: Headers, special: list[tuple[bytes, bytes]], now: int
    ) -> Entry | None:
        """The hot path's test: the memory entry that answers a plain GET or HEAD as it is,
        or None when the request needs the engine (a miss, stale, revalidation, directives).
        A varied answer (the origin's JSON, `Vary: Accept-Encoding`) is looked up by the
        variant the request's `headers` select, as the engine does."""
        if special and not self._plain(special):
            return None
        _, entry = self._in_memory(key, headers)
        epoch = self.epoch.value
        if (
            type(entry) is Entry
            and entry.serving is not None
            and (entry.epoch >= epoch or entry.immutable)  # a flush spares immutable ones
            and not entry.no_cache
            and entry.age(now) < entry.freshness
        ):
            return entry
        return None

    def answer_hit(
        self,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        client: tuple[str, int] | None,
        head: bool,
    ) -> tuple[bytes, bytes] | None:
        """For `proxy.protocol`, below ASGI: the response head and body of a plain hit on the
        origin-form `target`, counted; None when the request must go through the ASGI app
        (admin routes, a client or forward mode the gate must check, anything but a hit)."""
        started = time.perf_counter()
        key = self._protocol_key(target, client)
        if key is None:
            return None
        now = self.clock()
        special = [(k, v) for k, v in headers if k in _SPECIAL]
        entry = self.fresh_entry(key, headers, special, now)
        if entry is None:
            return None
        body = b"" if head else entry.body
        answer = hit_head(entry, now, self.epoch.value), body
        self.tally.count_fast_hit(time.perf_counter() - started, len(body))
        return answer

    def pending_fetch(
        self,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        client: tuple[str, int] | None,
    ) -> asyncio.Future[Outcome] | None:
        """For `proxy.protocol`: the upstream fetch already in flight that a GET or HEAD of
        `target`, with nothing of it in memory, would wait for in the engine (joined as a
        waiter), or None when the request must go through the ASGI app. At a run start
        hundreds of a node's clients ask for the run's new resolve URL at once; they wait for
        its one fetch here, below ASGI, instead of each going through a request cycle.

        Only a request without directives or validators waits here (the engine decides what
        those get: an only-if-cached miss is answered at once), and only when nothing is
        stored for its key: a stale entry may be served while it is revalidated."""
        key = self._protocol_key(target, client)
        if key is None or any(k in _SPECIAL for k, _ in headers):
            return None
        key, stored = self._in_memory(key, headers)
        flight = self.engine.flights.wait(key) if stored is None else None
        if flight is None:
            return None
        self.metrics.coalesced.inc()
        return flight.result

    def answer_collapsed(
        self,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        head: bool,
        outcome: Outcome,
        started: float,
    ) -> tuple[bytes, bytes] | None:
        """For `proxy.protocol`: the response head and body for a request that waited, since
        `started` (`time.perf_counter()`), for the fetch that ended with `outcome`, as the
        engine answers a collapsed request; None when the ASGI app must answer it from
        `outcome` (under the scope key COLLAPSED): the fetch failed or stored nothing, or
        stored another variant than this request's."""
        fetched = outcome.entry
        if fetched is None or outcome.error is not None or outcome.warning is not None:
            return None
        key = self._keys.get(target)
        if not isinstance(key, str):
            return None
        now = self.clock()
        entry = self.fresh_entry(key, headers, [], now)
        if entry is None or entry.body is not fetched.body:
            return None
        status = self.engine.status_for(replace(outcome, collapsed=True), False, now)
        body = b"" if head else entry.body
        answer = response_head(entry.status, self.engine.entry_headers(entry, now, status)), body
        self.tally.count_fast_collapsed(time.perf_counter() - started, len(body))
        return answer

    def _in_memory(self, key: str, headers: Headers) -> tuple[str, Stored | None]:
        """The key the request's variant is stored under and what memory holds there: a
        varied answer's marker is followed by the variant `headers` select, as the engine's
        `find` does over every tier."""
        stored = self.l1.peek(key)
        if type(stored) is VaryMarker:
            key = variant_key(key, stored.vary, headers)
            stored = self.l1.peek(key)
        return key, stored

    def _protocol_key(self, target: bytes, client: tuple[str, int] | None) -> str | None:
        """The cache key of an origin-form `target` from an admitted client, for requests
        `proxy.protocol` may answer itself; None for the rest (admin routes, a client or
        forward mode the gate must check)."""
        if target[:1] != b"/" or target.startswith(b"/_outpost/"):
            return None
        if not self.gate.admits_known(client):
            return None
        key = self._keys.get(target) or self._key(_target_scope(target))  # the same memo
        return key if isinstance(key, str) else None  # a refused target: the app says why

    async def read(self, scope: Scope, send: Send) -> None:
        started = time.perf_counter()
        key = self._key(scope)
        if not isinstance(key, str):
            await self._send_error(send, key, cache_status(self.name, detail="refused"))
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        special = [(k, v) for k, v in headers if k in _SPECIAL]
        now = self.clock()
        entry = self.fresh_entry(key, headers, special, now)  # the hot path: a fresh entry
        if entry is not None:
            hit = hit_headers(entry, now, self.epoch.value)
            body = b"" if scope["method"] == "HEAD" else entry.body
            await send({"type": "http.response.start", "status": entry.status, "headers": hit})
            await send({"type": "http.response.body", "body": body})
            self.tally.count("hit", time.perf_counter() - started, len(body))
            return
        cache_control = _request_cache_control(special, frontier=is_frontier_path(key))
        if cache_control.no_store or any(
            k in (b"authorization", b"cookie", b"range") for k, _ in special
        ):  # this client's own request (RFC 9111 §5.2.1.5: nothing of it is stored)
            await self._forward(scope, send, scope["method"], headers, None)
            return
        request = Request(
            method=scope["method"], key=key, headers=headers, cache_control=cache_control
        )
        collapsed: Outcome | None = scope.get(COLLAPSED)
        if collapsed is not None and self.engine.suits(request, collapsed):
            # it waited in `proxy.protocol` for a fetch that ended so
            outcome, cached = replace(collapsed, collapsed=True), False
        else:
            outcome, cached = await self.engine.resolve(request)
        await self._serve(send, scope, request, outcome, cached, special)
        if outcome.too_large:
            self.tally.count("pass", time.perf_counter() - started, 0)
            return
        size = len(outcome.entry.body) if outcome.entry is not None else 0
        self.tally.count(_result(outcome, cached), time.perf_counter() - started, size)

    async def _serve(
        self,
        send: Send,
        scope: Scope,
        request: Request,
        outcome: Outcome,
        cached: bool,
        special: list[tuple[bytes, bytes]],
    ) -> None:
        now = self.clock()
        status = self.engine.status_for(outcome, cached, now)
        entry = outcome.entry
        if entry is not None:
            stale = outcome.error is not None or outcome.warning is not None
            headers = self.engine.entry_headers(entry, now, status)
            if stale:
                headers.append(STALE_WARNING)
            inm = next((v for k, v in special if k == b"if-none-match"), None)
            ims = next((v for k, v in special if k == b"if-modified-since"), None)
            if (inm or ims) and not_modified(entry, inm, ims):
                start = {"type": "http.response.start", "status": 304}
                await send({**start, "headers": _no_body_headers(headers, _http_1_0(scope))})
                await send({"type": "http.response.body", "body": b""})
                return
            body = b"" if request.method == "HEAD" else entry.body
            await send({"type": "http.response.start", "status": entry.status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if outcome.too_large:  # not held by the cache: each request streams its own copy
            await self._forward(scope, send, "GET", request.headers, None)
            return
        if outcome.response is not None:
            await self._send_upstream(send, request, outcome, status, _http_1_0(scope))
            return
        await self._send_error(send, outcome.error or OutpostError("no answer"), status)

    async def _send_upstream(
        self, send: Send, request: Request, outcome: Outcome, status: bytes, http_1_0: bool
    ) -> None:
        response = outcome.response
        assert response is not None
        # a request that waited on another's fetch gets no cookie meant for that one
        dropped = _NOT_RELAYED_COLLAPSED if outcome.collapsed else _NOT_RELAYED
        headers = [(k, v) for k, v in response.headers if k not in dropped]
        headers = with_via(headers, self.name)
        headers.append((b"cache-status", status))
        headers.append((EPOCH_HEADER, str(self.epoch.value).encode()))
        bodiless = response.status in (204, 304) or response.status < 200
        if bodiless:  # RFC 9110 §8.6; a server would wait for the length's worth of body
            headers = _no_body_headers(headers, http_1_0)
        elif response.rest is None:
            if request.method != "HEAD" or response.body:  # a forwarded HEAD's is the GET's
                headers = [(k, v) for k, v in headers if k != b"content-length"]
                headers.append((b"content-length", str(len(response.body)).encode()))
        elif http_1_0 and request.method != "HEAD" and not get_first(headers, b"content-length"):
            await self._send_spooled(send, response, headers)  # HTTP/1.0 has no chunked coding
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if request.method == "HEAD" or bodiless or response.rest is None:
            empty = bodiless or request.method == "HEAD"
            await send({"type": "http.response.body", "body": b"" if empty else response.body})
            if response.rest is not None and response.close is not None:
                await response.close()  # type: ignore[misc]
            return
        await send({"type": "http.response.body", "body": response.body, "more_body": True})
        try:
            async for chunk in response.rest:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        finally:
            if response.close is not None:
                await response.close()  # type: ignore[misc]
        await send({"type": "http.response.body", "body": b""})

    async def _send_spooled(
        self, send: Send, response: UpstreamResponse, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """An over-sized answer of unknown length for an HTTP/1.0 client: read it whole into a
        temporary file, then send it with its Content-Length (or 502 if the upstream broke)."""
        assert response.rest is not None
        with tempfile.TemporaryFile(prefix="outpost-proxy-") as spool:
            spool.write(response.body)
            size = len(response.body)
            try:
                async for chunk in response.rest:
                    spool.write(chunk)
                    size += len(chunk)
            except (httpx.HTTPError, OSError) as exc:
                detail = f"{response.upstream} broke off after {size} bytes: {type(exc).__name__}"
                error = BadGateway(detail, accepted=[{"upstream": response.upstream}])
                await self._send_error(send, error, cache_status(self.name, fwd="miss"))
                return
            finally:
                if response.close is not None:
                    await response.close()  # type: ignore[misc]
            headers.append((b"content-length", str(size).encode()))
            start = {"type": "http.response.start", "status": response.status}
            await send({**start, "headers": headers})
            spool.seek(0)
            while chunk := spool.read(SPOOL_CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    async def _send_error(self, send: Send, error: OutpostError, status: bytes) -> None:
        body = error.body()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            (b"cache-status", status),
            (EPOCH_HEADER, str(self.epoch.value).encode()),
        ]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # --- uncached traffic ------------------------------------------------------------------

    async def pass_through(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Unsafe methods go upstream untouched; on success, the URL's entries are invalidated."""
        key = self._key(scope)
        if not isinstance(key, str):
            await self._send_error(send, key, cache_status(self.name, detail="refused"))
            return
        try:
            body = await _read_body(receive, self.settings.max_request_body_bytes)
        except PayloadTooLarge as error:
            await self._send_error(send, error, cache_status(self.name, fwd="method"))
            return
        status = await self._forward(scope, send, scope["method"], scope["headers"], body)
        if status is not None and 200 <= status < 400:
            await self.store.delete(key)  # RFC 9111 §4.4

    async def _forward(
        self,
        scope: Scope,
        send: Send,
        method: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
    ) -> int | None:
        # this client's own request, never stored: its fields go up as sent, trimmed of the
        # white space the upstream client would refuse
        trimmed = [(k, v.strip(b" \t")) for k, v in end_to_end(headers, drop=(b"host",))]
        forwarded = with_via(trimmed, self.name)
        status = cache_status(self.name, fwd="bypass" if method in ("GET", "HEAD") else "method")
        try:
            response = await self.upstreams.fetch(
                method,
                _raw_target(scope),
                forwarded,
                body=body,
                failover_on_5xx=method in ("GET", "HEAD"),
            )
        except (AllUpstreamsFailed, UnsendableRequest) as error:
            await self._send_error(send, error, status)
            return None
        self.epoch.adopt(response.epoch)
        # answered as the client asked: a HEAD that was fetched as a GET gets no body
        request = Request(scope["method"], "", headers, _NO_CACHE)
        outcome = Outcome(response=response, fwd="bypass")
        await self._send_upstream(send, request, outcome, status, _http_1_0(scope))
        self.tally.count("pass", 0.0, len(response.body))
        return response.status


def _target_scope(target: bytes) -> Scope:
    """The path fields of an ASGI scope for an origin-form request target, as uvicorn fills
    them (the path percent-decoded, the raw path and query as received)."""
    raw, _, query = target.partition(b"?")
    raw = raw.partition(b"#")[0]
    return {"path": unquote(raw.decode("latin-1")), "raw_path": raw, "query_string": query}


def _raw_target(scope: Scope) -> str:
    raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query = scope["query_string"].decode("latin-1")
    return f"{raw}?{query}" if query else raw


def _request_cache_control(special: list[tuple[bytes, bytes]], *, frontier: bool) -> CacheControl:
    """RFC 9111 §5.4: Pragma only without Cache-Control, except for Frontier URLs (whose
    clients send `Pragma: no-cache` next to `Cache-Control: max-stale=1`, as squid allows)."""
    values = [v for k, v in special if k == b"cache-control"]
    pragma = [v for k, v in special if k == b"pragma"]
    if not values and not pragma:
        return _NO_CACHE
    return request_cache_control(values, pragma, pragma_always=frontier)


def _http_1_0(scope: Scope) -> bool:
    return scope.get("http_version") in HTTP_1_0


def _no_body_headers(
    headers: list[tuple[bytes, bytes]], http_1_0: bool = False
) -> list[tuple[bytes, bytes]]:
    """Headers of a 304 (or 204): no body, so no Content-Length (RFC 9110 §8.6; granian drops
    it anyway); an HTTP/1.0 client also gets `Connection: close`, so no server leaves it
    waiting on an open connection for a body length it was never told."""
    dropped = (b"content-length", b"content-type", b"content-encoding")
    kept = [(k, v) for k, v in headers if k not in dropped]
    return [*kept, (b"connection", b"close")] if http_1_0 else kept


def _result(outcome: Outcome, cached: bool) -> str:
    """How an answer is counted: hit, collapsed, miss, stale, revalidated or error."""
    if outcome.entry is None:
        return "error" if outcome.error is not None else "miss"
    if outcome.error is not None or outcome.warning is not None:
        return "stale"
    if cached:
        return "hit" if outcome.fwd == "hit" else "stale"  # stale-while-revalidate
    if outcome.collapsed:
        return "collapsed"
    return "miss" if outcome.fwd == "miss" else "revalidated"


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes", accepted=f"<= {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def create_app(
    settings: ProxySettings,
    *,
    store: TieredStore | None = None,
    upstream_client: httpx.AsyncClient | None = None,
    clock: Callable[[], int] | None = None,
) -> ProxyApp:
    return ProxyApp(settings, store=store, upstream_client=upstream_client, clock=clock)
