"""Parts of objects too large to store whole (RFC 9111 §3.3, §3.4).

A range request is answered from a stored complete answer when there is one
(`proxy.responses.ranged`); a missing one is fetched whole. An object over `max_object_bytes` is
never stored whole, so its range requests go upstream as the client sent them. The 206 that
comes back is kept as the URL's part, combined with the part kept before where
`proxy.core.partial.combine` allows, and answers later requests for ranges it holds.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Send

from proxy.core.entry import SECOND, Entry, make_entry, response_cache_control
from proxy.core.headers import get_first
from proxy.core.partial import ContentRange, combine, content_range, holds, part_of, with_range
from proxy.core.policy import Verdict, is_storable, lookup
from proxy.core.ranges import Partial, if_range_holds, parse_range
from proxy.core.serving import entry_headers, prepare
from proxy.core.status import cache_status
from proxy.core.validators import strong_match
from proxy.epoch import EpochState
from proxy.flights import Request
from proxy.storage.tiered import TieredStore
from proxy.upstream import UpstreamResponse

__all__ = ["PART_SUFFIX", "Partials"]

# Where a URL's part is kept: after its key, behind a byte no request target can hold.
PART_SUFFIX = "\x1f206"


class Partials:
    def __init__(
        self,
        *,
        name: str,
        store: TieredStore,
        epoch: EpochState,
        clock: Callable[[], int],
        max_bytes: int,
    ) -> None:
        self.name, self.store, self.epoch, self.clock = name, store, epoch, clock
        self.max_bytes = max_bytes

    async def answer(
        self, send: Send, request: Request, wanted: bytes, if_range: bytes | None
    ) -> bool:
        """Answer a range request from the URL's part, if the part may be used as it is and
        holds the range; whether it did."""
        stored = await self.store.get(request.key + PART_SUFFIX)
        if not isinstance(stored, Entry):
            return False
        part = content_range(stored.headers, len(stored.body))
        if part is None:
            return False
        now, epoch = self.clock(), self.epoch.value
        decision = lookup(request.method, request.cache_control, stored, now, epoch)
        if decision.verdict is not Verdict.HIT:
            return False
        date = get_first(stored.headers, b"date")
        if if_range is not None and not if_range_holds(
            if_range, stored.etag, stored.last_modified, date
        ):
            return False
        asked = parse_range(wanted, part.length)
        if not isinstance(asked, Partial) or not holds(part, asked):
            return False
        status = cache_status(self.name, hit=True, ttl=stored.ttl(now))
        headers = entry_headers(stored, now, status, self.name, epoch)
        headers = with_range(headers, ContentRange(asked.first, asked.last, part.length))
        body = b"" if request.method == "HEAD" else part_of(part, stored.body, asked)
        await send({"type": "http.response.start", "status": 206, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True

    async def keep(self, request: Request, response: UpstreamResponse, request_time: int) -> None:
        """Keep a 206 the upstream sent for `request` as the URL's part, if it may be stored:
        one range of a known length, a strong entity-tag, no Vary, at most `max_bytes`."""
        if response.status != 206 or response.rest is not None:
            return
        headers, body = response.headers, response.body
        part = content_range(headers, len(body))
        etag = get_first(headers, b"etag")
        if part is None or etag is None or not strong_match(etag, etag):
            return
        if get_first(headers, b"vary") is not None or len(body) > self.max_bytes:
            return
        cc = response_cache_control(headers)
        if not is_storable(
            "GET", 206, request.cache_control, cc, headers, authorized=False, partial=True
        ):
            return
        key = request.key + PART_SUFFIX
        stored = await self.store.get(key)
        if isinstance(stored, Entry):
            before = content_range(stored.headers, len(stored.body))
            merged = None
            if before is not None:
                merged = combine(before, stored.headers, stored.body, part, headers, body)
            if merged is not None and merged[0].size <= self.max_bytes:
                part, body = merged
                headers = with_range(headers, part)
        entry = make_entry(206, headers, body, request_time, self.clock(), self.epoch.value)
        keep_for = entry.freshness // SECOND + 1
        await self.store.put(key, prepare(entry, self.name), keep_for)
