"""What the cache does not answer: unsafe methods, and a client's own uncacheable requests.

Unsafe methods go upstream as sent (no failover on 5xx once the request may have arrived); on a
2xx or 3xx the URL's entries are invalidated (RFC 9111 §4.4). A GET with `no-store`,
Authorization, Cookie or Range is this client's own request: forwarded, never stored.
"""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from outpost.errors import PayloadTooLarge
from proxy.core.directives import CacheControl
from proxy.core.headers import end_to_end, with_via
from proxy.core.invalidation import invalidated_keys, invalidates
from proxy.core.results import Fwd
from proxy.core.status import cache_status
from proxy.core.targeted import from_outpost_tier
from proxy.epoch import EpochState
from proxy.flights import Outcome, Request
from proxy.metrics import Tally
from proxy.partials import PART_SUFFIX
from proxy.responses import Responder, http_1_0
from proxy.storage.base import MARKER_SECONDS, VaryMarker
from proxy.storage.tiered import TieredStore
from proxy.upstream import AllUpstreamsFailed, UnsendableRequest, UpstreamResponse, Upstreams

__all__ = ["PassThrough"]

_NO_CACHE = CacheControl()


class PassThrough:
    def __init__(
        self,
        *,
        name: str,
        upstreams: Upstreams,
        store: TieredStore,
        epoch: EpochState,
        responder: Responder,
        tally: Tally,
        max_request_body: int,
    ) -> None:
        self.name, self.upstreams, self.store, self.epoch = name, upstreams, store, epoch
        self.responder, self.tally, self.max_request_body = responder, tally, max_request_body

    async def unsafe(self, scope: Scope, receive: Receive, send: Send, key: str) -> None:
        """An unsafe method on `key`'s URL: forwarded; on success, the URL's entries go."""
        try:
            body = await _read_body(receive, self.max_request_body)
        except PayloadTooLarge as error:
            await self.responder.send_error(send, error, cache_status(self.name, fwd="method"))
            return
        answer = await self.forward(scope, send, scope["method"], scope["headers"], body)
        if answer is not None and invalidates(answer.status):
            host = next((v for k, v in scope["headers"] if k == b"host"), None)
            for invalid in invalidated_keys(key, host, answer.headers):
                await self._invalidate(invalid)

    async def _invalidate(self, key: str) -> None:
        """Make what is stored for `key` unusable (RFC 9111 §4.4): the entry goes; a varied
        URL's marker stays and hides every variant stored until now."""
        stored = await self.store.get(key)
        if isinstance(stored, VaryMarker):
            marker = VaryMarker(stored.vary, invalidated=self.responder.clock())
            await self.store.put(key, marker, MARKER_SECONDS)
        else:
            await self.store.delete(key)
        await self.store.delete(key + PART_SUFFIX)  # a part kept of it (`proxy.partials`)

    async def forward(
        self,
        scope: Scope,
        send: Send,
        method: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
    ) -> UpstreamResponse | None:
        """Send the client's request upstream and its answer back; the answer (its body may
        have been streamed), or None when none came."""
        # this client's own request, never stored: its fields go up as sent, trimmed of the
        # white space the upstream client would refuse
        trimmed = [(k, v.strip(b" \t")) for k, v in end_to_end(headers, drop=(b"host",))]
        forwarded = with_via(trimmed, self.name)
        safe = method in ("GET", "HEAD")
        status = cache_status(self.name, fwd=Fwd.BYPASS if safe else "method")
        try:
            response = await self.upstreams.fetch(
                method, _raw_target(scope), forwarded, body=body, failover_on_5xx=safe
            )
        except AllUpstreamsFailed as error:
            if error.answer is None:
                await self.responder.send_error(send, error, status)
                return None
            response = error.answer  # every upstream failed: the last one's own answer
        except UnsendableRequest as error:
            await self.responder.send_error(send, error, status)
            return None
        self.epoch.adopt(response.epoch)
        # answered as the client asked: a HEAD that was fetched as a GET gets no body
        request = Request(scope["method"], "", headers, _NO_CACHE)
        outcome = Outcome(response=response, fwd=Fwd.BYPASS)
        tier = from_outpost_tier(headers)
        self.responder.send_interim(scope, response)
        await self.responder.send_upstream(send, request, outcome, status, http_1_0(scope), tier)
        self.tally.count("pass", 0.0, len(response.body))
        return response


def _raw_target(scope: Scope) -> str:
    raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query = scope["query_string"].decode("latin-1")
    return f"{raw}?{query}" if query else raw


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
