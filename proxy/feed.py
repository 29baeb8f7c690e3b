"""A subscribing proxy's change feed: follow the upstream's, hold what it announces, relay it.

`Feed.run` long-polls the first live upstream's `/v1/changes` (through `Upstreams`, so it fails
over with the upstream list and its circuit breakers) from the last position it applied. For
each page it drops the stored answers the entries change, fetches the payloads they announce
through the engine (coalesced with any request for them, streamed, checked against their
hash, stored), and only then adds the entries to its ring (`proxy.core.feed.FeedRing`), where
children read them: so a child's fetch of an announced object is a hit here.

`Feed.serve` answers children's `/v1/changes` from the ring, long-polling as the origin does;
a child at a position the ring no longer holds (too slow to keep up, or just started) or ahead
of this proxy is passed upstream, where the whole history is, so it catches up from the feed
and nothing is lost or reordered. A proxy that does not subscribe passes every feed request
upstream like any uncacheable GET.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from starlette.types import Scope, Send

from outpost import draining
from outpost.errors import BadRequest, ServiceUnavailable
from outpost.urls import FeedQuery, GlobalTagMap, parse_feed
from proxy.core.directives import CacheControl
from proxy.core.feed import (
    Entry,
    FeedRing,
    FeedUnreadable,
    changes_globaltag,
    mapped_tags,
    page_answer,
    parse_page,
    plan,
)
from proxy.core.headers import with_via
from proxy.core.status import cache_status
from proxy.engine import Engine
from proxy.flights import RelayBroken, Request
from proxy.metrics import ProxyMetrics
from proxy.responses import Responder
from proxy.storage.tiered import TieredStore
from proxy.upstream import AllUpstreamsFailed, UpstreamResponse, Upstreams

__all__ = ["Feed", "ask_upstream", "pass_up", "serve_unsubscribed"]

log = logging.getLogger("outpost.proxy.feed")

PAGE_LIMIT = 1000  # entries asked for per poll
PREFETCH_CONCURRENCY = 16
PREFETCH_ATTEMPTS = 3
RETRY_SECONDS = 1.0  # after a failed poll
SHUTDOWN_CHECK_SECONDS = 60.0  # a passed-up long poll waits in steps this long (or to the end)
EMPTY_AT_ONCE = 0.05  # an empty answer this quick to a long poll: do not ask again at once

_PASSED = (b"content-type", b"outpost-feed-head")  # what a passed-up answer keeps


class Feed:
    def __init__(
        self,
        *,
        name: str,
        ring: FeedRing,
        upstreams: Upstreams,
        engine: Engine,
        store: TieredStore,
        responder: Responder,
        metrics: ProxyMetrics,
        tags: Sequence[str],
        wait_seconds: int,
        globaltags: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.ring = ring
        self.upstreams = upstreams
        self.engine = engine
        self.store = store
        self.responder = responder
        self.metrics = metrics
        self.tags = tuple(tags)
        self.globaltags = tuple(globaltags)
        self._maps: dict[str, frozenset[str]] = {}  # subscribed global tag → the tags it maps
        self.wait_seconds = wait_seconds
        # From the last applied entry's commit at the origin to when it was applied here.
        self.lag_seconds: float | None = None
        self._moved: asyncio.Future[None] | None = None
        self._slots = asyncio.Semaphore(PREFETCH_CONCURRENCY)

    # --- following the upstream ------------------------------------------------------------

    async def run(self) -> None:
        """Follow the upstream's feed until cancelled."""
        while True:
            try:
                if not await self._poll():
                    await asyncio.sleep(RETRY_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop the feed for good
                log.exception("following the feed failed")
                await asyncio.sleep(RETRY_SECONDS)

    async def _poll(self) -> bool:
        """One poll of the upstream's feed, applied; False if it failed."""
        ring = self.ring
        if ring.base is None:  # learn where the feed stands: this proxy holds nothing older
            head = await self._upstream_head()
            if head is None:
                return False
            ring.start(head)
            await self._read_maps()
            self.metrics.feed_position.set(head)
            log.info("following the feed from position %d", head)
            return True
        after = ring.head or 0
        query = FeedQuery(after=after, limit=PAGE_LIMIT, wait=self.wait_seconds)
        asked = time.monotonic()
        answer = await self._get(query)
        if answer is None:
            return False
        status, body, headers = answer
        if status == 409:  # the upstream's feed is behind us: another database, or restored
            head = _int_header(headers, b"outpost-feed-head")
            self.metrics.feed_problems.labels("resync").inc()
            log.warning("the upstream's feed is behind position %d: resync at %s", after, head)
            if head is None:
                return False
            ring.start(head)
            await self._read_maps()
            self._wake()
            return True
        try:
            page = parse_page(body, after)
        except FeedUnreadable as exc:
            self.metrics.feed_problems.labels("unreadable").inc()
            log.warning("the upstream's feed answer is unreadable: %s", exc)
            return False
        ring.upstream_head = max(ring.upstream_head, page.head)
        if page.entries:
            await self._apply(page.entries)
        elif time.monotonic() - asked < EMPTY_AT_ONCE:  # not held: the upstream is stopping
            await asyncio.sleep(RETRY_SECONDS / 10)
        self.metrics.feed_lag_entries.set(max(0, ring.upstream_head - (ring.head or 0)))
        return True

    async def _upstream_head(self) -> int | None:
        answer = await self._get(FeedQuery(after=0, limit=1))
        if answer is None or answer[0] != 200:
            return None
        try:
            return parse_page(answer[1], 0).head
        except FeedUnreadable:
            self.metrics.feed_problems.labels("unreadable").inc()
            return None

    async def _get(self, query: FeedQuery) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        try:
            return await ask_upstream(self.upstreams, self.name, query)
        except AllUpstreamsFailed as exc:
            self.metrics.feed_problems.labels("unreachable").inc()
            log.warning("no upstream answers the feed: %s", exc)
            return None

    async def _apply(self, entries: list[Entry]) -> None:
        """Hold what `entries` announce, then let children read them."""
        wanted = plan(entries, self.tags, self.mapped)
        for url in wanted.drop:
            await self.store.delete(url)
        if changes_globaltag(entries, self.globaltags):  # its map was dropped above: read anew
            await self._read_maps()
            wanted = plan(entries, self.tags, self.mapped)
        await asyncio.gather(*(self._hold(url) for url in wanted.fetch))
        self.ring.add(entries)
        self.metrics.feed_position.set(entries[-1].seq)
        committed = entries[-1].time
        if committed is not None:
            self.lag_seconds = max(0.0, time.time() - committed / 1_000_000)
            self.metrics.feed_lag_seconds.set(self.lag_seconds)
        self._wake()

    @property
    def mapped(self) -> frozenset[str] | None:
        """The tags the subscribed global tags map (None: no global tag is subscribed)."""
        if not self.globaltags:
            return None
        return frozenset().union(*self._maps.values())

    async def _read_maps(self) -> None:
        """Read the subscribed global tags' maps through the cache. One that cannot be read
        keeps the tags it mapped before (none, at the start): its payloads are then fetched
        by the children that ask for them, as without a subscription."""
        for name in self.globaltags:
            request = Request("GET", GlobalTagMap(name).url(), [], CacheControl())
            try:
                status, body = await self._read(request)
                if status == 404:
                    self._maps[name] = frozenset()  # not created yet
                elif status != 200:
                    raise FeedUnreadable(f"status {status}")
                else:
                    self._maps[name] = mapped_tags(body)
            except (FeedUnreadable, RelayBroken) as exc:
                self.metrics.feed_problems.labels("globaltag").inc()
                log.warning("cannot read global tag %s's map: %s", name, exc)

    async def _read(self, request: Request) -> tuple[int, bytes]:
        """Status and body of a GET through the cache (stored, passed on or relayed)."""
        outcome, _ = await self.engine.resolve(request)
        if outcome.entry is not None:
            return outcome.entry.status, outcome.entry.body
        if outcome.relay is not None:
            return 200, b"".join([chunk async for chunk in outcome.relay.chunks()])
        if outcome.response is not None:
            await outcome.response.close()
            return outcome.response.status, outcome.response.body
        raise FeedUnreadable(f"no answer: {outcome.error}")

    async def _hold(self, url: str) -> None:
        """Fetch `url` into the cache (a hit if it is there), with a few tries; a payload that
        cannot be had is announced anyway: the children fetch it themselves, and fail over."""
        request = Request("GET", url, [], CacheControl())
        async with self._slots:
            for attempt in range(PREFETCH_ATTEMPTS):
                outcome, _ = await self.engine.resolve(request)
                if outcome.relay is not None:  # a large one, still arriving: wait for the end
                    try:
                        async for _ in outcome.relay.chunks():
                            pass
                    except RelayBroken:
                        pass  # cut off, or failed its check: fetched again
                    else:
                        self.metrics.feed_prefetched.labels("held").inc()
                        return
                elif outcome.error is None and outcome.entry is not None:
                    self.metrics.feed_prefetched.labels("held").inc()
                    return
                await asyncio.sleep(0.1 * 2**attempt)
        self.metrics.feed_prefetched.labels("failed").inc()
        log.warning("could not hold %s, announced by the feed", url[:200])

    def status(self) -> dict[str, object]:
        """For `/_outpost/status`: where this proxy stands in the feed."""
        ring = self.ring
        return {
            "position": ring.head,
            "upstream_head": ring.upstream_head,
            "behind": max(0, ring.upstream_head - (ring.head or 0)),
            "resumable_from": ring.base,
            "buffered_entries": len(ring),
            "buffered_bytes": ring.bytes,
            "tags": list(self.tags) or None,
            "globaltags": list(self.globaltags) or None,
            "mapped_tags": None if self.mapped is None else len(self.mapped),
        }

    # --- serving children ------------------------------------------------------------------

    async def serve(self, scope: Scope, send: Send) -> None:
        try:
            query = parse_feed(scope["query_string"].decode("latin-1"))
        except BadRequest as error:
            await self.responder.send_error(send, error, cache_status(self.name, detail="refused"))
            return
        ring = self.ring
        if not ring.answers(query.after):  # before this ring, or ahead of it: upstream
            await pass_up(self.upstreams, self.responder, self.name, query, send, scope)
            return
        entries = ring.after(query.after, query.limit)
        if not entries and query.wait:
            await self._wait_beyond(query.after, query.wait)
            entries = ring.after(query.after, query.limit)
        body = page_answer(query.after, ring.head or 0, [(e.seq, e.raw) for e in entries])
        headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
            (b"content-length", b"%d" % len(body)),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        head = scope["method"] == "HEAD"
        await send({"type": "http.response.body", "body": b"" if head else body})

    async def _wait_beyond(self, position: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self.ring.head or 0) <= position and not draining.is_draining():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            if self._moved is None or self._moved.done():
                self._moved = loop.create_future()
            await draining.wait_until(self._moved, remaining)

    def _wake(self) -> None:
        if self._moved is not None and not self._moved.done():
            self._moved.set_result(None)


async def serve_unsubscribed(
    scope: Scope, send: Send, upstreams: Upstreams, responder: Responder, name: str
) -> None:
    """`/v1/changes` at a proxy that does not follow the feed: checked, then passed upstream."""
    try:
        query = parse_feed(scope["query_string"].decode("latin-1"))
    except BadRequest as error:
        await responder.send_error(send, error, cache_status(name, detail="refused"))
        return
    await pass_up(upstreams, responder, name, query, send, scope)


async def pass_up(
    upstreams: Upstreams,
    responder: Responder,
    name: str,
    query: FeedQuery,
    send: Send,
    scope: Scope,
) -> None:
    """Answer a feed request with the first live upstream's answer. A long poll passed up
    ends when this proxy begins to shut down (503, `Retry-After: 0`): its reader asks again,
    from the same position, elsewhere, and the proxy stops without waiting for it."""
    asking = asyncio.ensure_future(ask_upstream(upstreams, name, query))
    await draining.wait_until(asking, SHUTDOWN_CHECK_SECONDS)
    while not asking.done() and not draining.is_draining():  # a long poll: keep waiting
        await draining.wait_until(asking, SHUTDOWN_CHECK_SECONDS)
    if not asking.done():
        asking.cancel()
        with contextlib.suppress(asyncio.CancelledError, AllUpstreamsFailed):
            await asking
        stopping = ServiceUnavailable(
            "this proxy is shutting down: ask again", headers={"Retry-After": "0"}
        )
        await responder.send_error(send, stopping, cache_status(name, detail="draining"))
        return
    try:
        status, body, fields = asking.result()
    except AllUpstreamsFailed as error:
        await responder.send_error(send, error, cache_status(name, fwd="uri-miss"))
        return
    kept = [(k, v) for k, v in fields if k in _PASSED]
    headers = [*kept, (b"cache-control", b"no-store"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    head = scope["method"] == "HEAD"
    await send({"type": "http.response.body", "body": b"" if head else body})


async def ask_upstream(
    upstreams: Upstreams, name: str, query: FeedQuery
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The first live upstream's answer to `query` (one without a feed, such as a plain HTTP
    server or a squid, is passed over); `AllUpstreamsFailed` if none has one."""
    headers = with_via([(b"accept", b"application/json")], name)
    response = await upstreams.fetch("GET", query.url(), headers, check=_feed_answer)
    await response.close()  # over max_object_bytes: not a feed page
    if response.rest is not None:
        raise AllUpstreamsFailed([])
    return response.status, response.body, response.headers


def _feed_answer(response: UpstreamResponse) -> str | None:
    if response.status in (200, 409):
        return None
    return f"status {response.status} for the change feed"


def _int_header(headers: list[tuple[bytes, bytes]], name: bytes) -> int | None:
    for key, value in headers:
        if key == name and value.strip().isdigit():
            return int(value)
    return None
