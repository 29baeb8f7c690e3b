"""The proxy's ASGI app: wiring and lifespan, and the read path that ties the parts together.

    proxy.hits          the hit path and the keys (also below ASGI, for proxy.protocol)
    proxy.engine        misses, revalidation, stale answers: the core's verdicts, driven
    proxy.flights       one fetch per key in flight, and every wait for one
    proxy.responses     writing answers to ASGI
    proxy.passthrough   unsafe methods and a client's own uncacheable requests
    proxy.partials      parts (206) of objects too large to store whole
    proxy.feed          the change feed: followed upstream, its objects held, relayed to children
    proxy.admin         `/_outpost/*`: health, metrics, status, flush, warm, register
    proxy.ui            `/_outpost/ui/`: the cache-tree dashboard (its data: proxy.dashboard)

The lifespan owns the upstream HTTP client, the Redis connection, the heartbeat to the parent,
the task that follows the upstream's change feed and the dashboard's sampler (proxy.dashboard).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from outpost import draining, hangup
from outpost.accesslog import logged, open_access_log
from outpost.errors import OutpostError
from outpost.limits import limits_from
from outpost.redact import SecretScrubber
from outpost.runtime import QuietCollector
from outpost.urls import FEED_PATH
from proxy.admin import admin_routes
from proxy.core.directives import CacheControl, request_cache_control
from proxy.core.entry import Entry
from proxy.core.feed import FeedRing
from proxy.core.frontier import is_frontier_path
from proxy.core.serving import hit_headers, prepare
from proxy.core.signing import Signer
from proxy.core.status import cache_status
from proxy.core.targeted import TIER_AGENT
from proxy.dashboard import Dashboard
from proxy.engine import Engine
from proxy.epoch import EpochState
from proxy.feed import Feed, serve_unsubscribed
from proxy.flights import Outcome, Request, describe
from proxy.gate import Gate
from proxy.hits import COLLAPSED, RESERVED, SPECIAL, HitPath
from proxy.http_client import AiohttpClient, HttpClient
from proxy.metrics import ProxyMetrics
from proxy.partials import Partials
from proxy.passthrough import PassThrough
from proxy.responses import Responder
from proxy.settings import ProxySettings
from proxy.storage.base import Stored
from proxy.storage.memory import MemoryStore
from proxy.storage.redis import RedisStore
from proxy.storage.tiered import TieredStore
from proxy.tree import FanOut, Registry, heartbeat
from proxy.upstream import Upstreams

__all__ = ["ProxyApp", "create_app", "system_clock"]

log = logging.getLogger("outpost.proxy")
_NO_CACHE = CacheControl()


def system_clock() -> int:
    return time.time_ns() // 1000


class ProxyApp:
    def __init__(
        self,
        settings: ProxySettings,
        *,
        store: TieredStore | None = None,
        upstream_client: HttpClient | None = None,
        clock: Callable[[], int] | None = None,
        quiet_gc: bool = False,
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
        self.client = upstream_client or AiohttpClient(
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.read_timeout_seconds,
            user_agent=TIER_AGENT.decode() + settings.name,
        )
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
            relay_from=settings.relay_from_bytes or None,
        )
        self.fan_out = FanOut(
            Signer(settings.tree_signing_key) if settings.tree_signing_key else None,
            concurrency=settings.flush_concurrency,
            timeout=settings.flush_timeout_seconds,
        )
        self.dashboard = Dashboard(self)  # `/_outpost/ui/`: samples, children's figures, flushes
        self.admin = admin_routes(self)
        self.gate = Gate(settings)
        self.hits = HitPath(
            name=self.name,
            memory=self.l1,
            epoch=self.epoch,
            gate=self.gate,
            flights=self.engine.flights,
            tally=self.tally,
            clock=self.clock,
        )
        self.access_log = open_access_log(
            settings.access_log, settings.access_log_format, self.metrics.access_log_dropped.inc
        )
        self.hits.access_log = self.access_log
        if self.store.l2 is None:  # else a miss asks the shared tier first (`Engine.resolve`)
            self.hits.lead = self.engine.lead
        self.responder = Responder(self.name, self.epoch, self.clock)
        self.pass_through = PassThrough(
            name=self.name,
            upstreams=self.upstreams,
            store=self.store,
            epoch=self.epoch,
            responder=self.responder,
            tally=self.tally,
            max_request_body=settings.max_request_body_bytes,
        )
        self.partials = Partials(
            name=self.name,
            store=self.store,
            epoch=self.epoch,
            clock=self.clock,
            max_bytes=settings.max_object_bytes,
        )
        self.feed: Feed | None = None
        if settings.subscribes:
            self.feed = Feed(
                name=self.name,
                ring=FeedRing(settings.feed_buffer_entries, settings.feed_buffer_bytes),
                upstreams=self.upstreams,
                engine=self.engine,
                store=self.store,
                responder=self.responder,
                metrics=self.metrics,
                tags=settings.subscribe_tags,
                globaltags=settings.subscribe_globaltags,
                wait_seconds=min(
                    settings.feed_wait_seconds, max(1, int(settings.read_timeout_seconds) - 5)
                ),
            )
        self._exit: contextlib.AsyncExitStack | None = None
        # collect garbage when the loop is quiet (`outpost.runtime`): asked for by the servers'
        # entry points (which then call `tune_process`), never in-process (tests, benchmarks)
        self.quiet_gc = quiet_gc

    def _prepare(self, value: Stored) -> Stored:
        if isinstance(value, Entry) and value.serving is None:
            return prepare(value, self.name)
        return value

    # --- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.access_log is not None:
            await logged(self._handle, scope, receive, send, self.access_log)
        else:
            await self._handle(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"].startswith("/_outpost/"):
                await self.admin(scope, receive, send)
                return
            if self.gate.needs_check(scope):
                admitted = self.gate.admit(scope)
                if isinstance(admitted, OutpostError):
                    status = cache_status(self.name, detail="refused")
                    await self.responder.send_error(send, admitted, status)
                    return
                scope = admitted
            if scope["method"] in ("GET", "HEAD"):
                await self.read(scope, send)
                return
            key = self.hits.key(scope)
            if isinstance(key, str):
                await self.pass_through.unsafe(scope, receive, send, key)
            else:
                refused = cache_status(self.name, detail="refused")
                await self.responder.send_error(send, key, refused)
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
        hangup.install()  # SIGHUP reloads (`outpost.hangup`); the cache stays
        draining.on_stop_signals()  # long polls end at once when the server is told to stop
        if self.access_log is not None:
            self.access_log.start()
        if self.redis is not None:  # catch up with flushes made while this proxy was down
            self.epoch.adopt(await self.redis.epoch())
        self._exit = contextlib.AsyncExitStack()
        if self.quiet_gc:
            collector = QuietCollector(asyncio.get_running_loop())
            collector.start()
            self._exit.callback(collector.stop)
        sampling = asyncio.get_running_loop().create_task(self.dashboard.run())
        self._exit.push_async_callback(_cancel, sampling)
        if self.feed is not None:
            following = asyncio.get_running_loop().create_task(self.feed.run())
            self._exit.push_async_callback(_cancel, following)
        if self.settings.parent:
            me = {"name": self.name, "url": self.settings.url}
            await self._exit.enter_async_context(
                heartbeat(
                    self.settings.parent,
                    me,
                    self.settings.register_token,
                    self.settings.heartbeat_seconds,
                    self.epoch.adopt,
                    figures=self.dashboard.figures,
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
        self.dashboard.close()
        self.epoch.close()
        if self.access_log is not None:
            await self.access_log.stop()

    # --- reads -----------------------------------------------------------------------------

    async def read(self, scope: Scope, send: Send) -> None:
        reserved: str | None = scope.get(RESERVED)
        if reserved is None:
            await self._read(scope, send)
            return
        try:  # `proxy.protocol` reserved a flight for this request to lead
            await self._read(scope, send)
        finally:
            self.engine.flights.release(reserved)  # if it never fetched

    async def _read(self, scope: Scope, send: Send) -> None:
        if scope["path"] == FEED_PATH:
            if self.feed is not None:
                await self.feed.serve(scope, send)
            else:  # passed upstream, and ended at once when this proxy stops
                await serve_unsubscribed(scope, send, self.upstreams, self.responder, self.name)
            return
        started = time.perf_counter()
        key = self.hits.key(scope)
        if not isinstance(key, str):
            await self.responder.send_error(send, key, cache_status(self.name, detail="refused"))
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        special = [(k, v) for k, v in headers if k in SPECIAL]
        now = self.clock()
        entry = self.hits.fresh_entry(key, headers, special, now)  # the hot path
        if entry is not None:
            hit = hit_headers(entry, now, self.epoch.value)
            body = b"" if scope["method"] == "HEAD" else entry.body
            await send({"type": "http.response.start", "status": entry.status, "headers": hit})
            await send({"type": "http.response.body", "body": body})
            self.tally.count("hit", time.perf_counter() - started, len(body))
            return
        cache_control = _request_cache_control(special, frontier=is_frontier_path(key))
        if cache_control.no_store or any(k == b"cookie" for k, _ in special):
            # this client's own request (RFC 9111 §5.2.1.5: nothing of it is stored; a cookie
            # is one client's state, never part of a shared fetch)
            await self.pass_through.forward(scope, send, scope["method"], headers, None)
            return
        request = Request(
            method=scope["method"], key=key, headers=headers, cache_control=cache_control
        )
        wanted = next((v for k, v in special if k == b"range"), None)
        if wanted is not None:  # a part kept of an object too large to store whole?
            if_range = next((v for k, v in special if k == b"if-range"), None)
            if await self.partials.answer(send, request, wanted, if_range):
                self.tally.count("hit", time.perf_counter() - started, 0)
                return
        collapsed: Outcome | None = scope.get(COLLAPSED)
        if (
            collapsed is not None
            and not collapsed.retry
            and self.engine.flights.suits(request, collapsed)
        ):
            outcome, cached = collapsed, False  # it waited in `proxy.protocol` for this fetch
        else:
            outcome, cached = await self.engine.resolve(request)
        if outcome.too_large:  # not held by the cache: each request streams its own copy
            asked_at = self.clock()
            response = await self.pass_through.forward(scope, send, "GET", headers, None)
            if response is not None and wanted is not None and not _credentials(special):
                await self.partials.keep(request, response, asked_at)
            self.tally.count("pass", time.perf_counter() - started, 0)
            return
        result, status = describe(self.name, outcome, cached, self.clock())
        await self.responder.serve(send, scope, request, outcome, status, special)
        size = _size(outcome)
        self.tally.count(result, time.perf_counter() - started, size)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _credentials(special: list[tuple[bytes, bytes]]) -> bool:
    return any(k == b"authorization" for k, _ in special)


def _size(outcome: Outcome) -> int:
    if outcome.entry is not None:
        return len(outcome.entry.body)
    return outcome.relay.length if outcome.relay is not None else 0


def _request_cache_control(special: list[tuple[bytes, bytes]], *, frontier: bool) -> CacheControl:
    """RFC 9111 §5.4: Pragma only without Cache-Control, except for Frontier URLs (whose
    clients send `Pragma: no-cache` next to `Cache-Control: max-stale=1`, as squid allows)."""
    values = [v for k, v in special if k == b"cache-control"]
    pragma = [v for k, v in special if k == b"pragma"]
    if not values and not pragma:
        return _NO_CACHE
    return request_cache_control(values, pragma, pragma_always=frontier)


def create_app(
    settings: ProxySettings,
    *,
    store: TieredStore | None = None,
    upstream_client: HttpClient | None = None,
    clock: Callable[[], int] | None = None,
    quiet_gc: bool = False,
) -> ProxyApp:
    return ProxyApp(
        settings, store=store, upstream_client=upstream_client, clock=clock, quiet_gc=quiet_gc
    )
