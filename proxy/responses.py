"""Writing answers to ASGI: a stored entry, a relayed body, an upstream's answer, an error.

Every answer carries Content-Length, or has no body by definition (304, 204, HEAD): HTTP/1.0
clients (frontier_client) cannot read chunked bodies. The one answer whose length is not known
up front, an object over max_object_bytes that an upstream sends without Content-Length, is
streamed to HTTP/1.1 clients and spooled to a temporary file first for HTTP/1.0 clients.

A relayed body (`proxy.flights.Relay`) is sent as it arrives; if it breaks (the upstream broke
off, the payload failed its hash), `BodyAborted` is raised after some of it was sent, and the
server closes the connection before the declared length: the client cannot take a truncated or
wrong body for a whole one.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable

from starlette.types import Scope, Send

from outpost.errors import BadGateway, OutpostError
from proxy.core.entry import Entry
from proxy.core.epochs import EPOCH_HEADER
from proxy.core.headers import get_all, get_first, with_via
from proxy.core.ranges import (
    Partial,
    Unsatisfiable,
    if_range_holds,
    parse_range,
    partial_headers,
    unsatisfiable_headers,
)
from proxy.core.serving import entry_headers
from proxy.core.status import cache_status, chain
from proxy.core.targeted import OUTPOST_CACHE_CONTROL, from_outpost_tier
from proxy.core.validators import not_modified
from proxy.epoch import EpochState
from proxy.flights import Outcome, RelayBroken, Request
from proxy.hits import INTERIM
from proxy.http_client import UpstreamFailure
from proxy.upstream import UpstreamResponse

__all__ = ["STALE_WARNING", "BodyAborted", "Responder", "http_1_0"]

SPOOL_CHUNK = 1024 * 1024
HTTP_1_0 = frozenset({"1.0", "1", "0.9"})  # granian reports HTTP/1.0 as "1"
STALE_WARNING = (b"warning", b'111 - "Revalidation Failed"')  # served stale: upstreams failed
_NOT_RELAYED = frozenset({b"cache-status", EPOCH_HEADER})  # each proxy writes its own
_NOT_RELAYED_COLLAPSED = _NOT_RELAYED | {b"set-cookie"}
_LENGTH = frozenset({b"content-length"})
_BODY_FIELDS = frozenset({b"content-type", b"content-encoding"})


class BodyAborted(Exception):
    """A body broke off after its head was sent: the connection must close before its end."""


def _quiet_aborts(record: logging.LogRecord) -> bool:
    """uvicorn logs an app's exception with a traceback; an aborted relay is logged once, in
    one line, by the engine. (`outpost.redact.SecretScrubber` turns `exc_info` into text when
    the record is made, hence the second test.)"""
    if record.exc_info:
        return not isinstance(record.exc_info[1], BodyAborted)
    return _ABORTED not in (record.exc_text or "")


_ABORTED = f"{BodyAborted.__module__}.{BodyAborted.__qualname__}: "
logging.getLogger("uvicorn.error").addFilter(_quiet_aborts)


def http_1_0(scope: Scope) -> bool:
    return scope.get("http_version") in HTTP_1_0


class Responder:
    def __init__(self, name: str, epoch: EpochState, clock: Callable[[], int]) -> None:
        self.name, self.epoch, self.clock = name, epoch, clock

    async def serve(
        self,
        send: Send,
        scope: Scope,
        request: Request,
        outcome: Outcome,
        status: bytes,
        special: list[tuple[bytes, bytes]],
    ) -> None:
        """Answer `request` from `outcome`, with our Cache-Status entry `status`."""
        self.send_interim(scope, outcome.response)
        entry = outcome.entry
        tier = from_outpost_tier(scope["headers"])
        if entry is not None:
            headers = entry_headers(entry, self.clock(), status, self.name, self.epoch.value)
            if entry.targeted and tier:  # left out of every other client's answer
                headers += [(k, v) for k, v in entry.headers if k == OUTPOST_CACHE_CONTROL]
            if outcome.error is not None or outcome.warning is not None:
                headers.append(STALE_WARNING)
            inm = next((v for k, v in special if k == b"if-none-match"), None)
            ims = next((v for k, v in special if k == b"if-modified-since"), None)
            if (inm or ims) and not_modified(entry, inm, ims, method=request.method):
                start = {"type": "http.response.start", "status": 304}
                await send({**start, "headers": no_body_headers(headers, http_1_0(scope))})
                await send({"type": "http.response.body", "body": b""})
                return
            status_code, body = entry.status, entry.body
            wanted = next((v for k, v in special if k == b"range"), None)
            if wanted is not None and request.method == "GET" and entry.status == 200:
                status_code, headers, body = ranged(entry, headers, wanted, special)
            if request.method == "HEAD":
                body = b""
            await send({"type": "http.response.start", "status": status_code, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if outcome.relay is not None:
            await self._send_relayed(send, request, outcome, status, tier)
            return
        if outcome.response is not None:
            await self.send_upstream(send, request, outcome, status, http_1_0(scope), tier)
            return
        await self.send_error(send, outcome.error or OutpostError("no answer"), status)

    def send_interim(self, scope: Scope, response: UpstreamResponse | None) -> None:
        """Forward the interim (1xx) answers the upstream sent before `response`, where the
        server lets the proxy write them (`proxy.protocol`, HTTP/1.1 clients)."""
        if response is None or not response.interim:
            return
        write = scope.get(INTERIM)
        if write is not None:
            for status, fields in response.interim:
                write(status, with_via(fields, self.name))

    async def _send_relayed(
        self, send: Send, request: Request, outcome: Outcome, status: bytes, tier: bool
    ) -> None:
        relay = outcome.relay
        assert relay is not None
        fields = [(k, v) for k, v in relay.headers if k not in _LENGTH]
        upstream = b", ".join(get_all(fields, b"cache-status")) or None
        headers = self._relayed_headers(fields, outcome.collapsed, chain(upstream, status), tier)
        headers.append((b"content-length", b"%d" % relay.length))
        start = {"type": "http.response.start", "status": relay.status, "headers": headers}
        await send(start)
        if request.method == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            async for chunk in relay.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except RelayBroken as broken:
            raise BodyAborted(str(broken)) from None
        await send({"type": "http.response.body", "body": b""})

    def _relayed_headers(
        self, fields: list[tuple[bytes, bytes]], collapsed: bool, status: bytes, tier: bool
    ) -> list[tuple[bytes, bytes]]:
        # a request that waited on another's fetch gets no cookie meant for that one
        dropped = _NOT_RELAYED_COLLAPSED if collapsed else _NOT_RELAYED
        if not tier:
            dropped = dropped | {OUTPOST_CACHE_CONTROL}
        headers = with_via([(k, v) for k, v in fields if k not in dropped], self.name)
        headers.append((b"cache-status", status))
        headers.append((EPOCH_HEADER, str(self.epoch.value).encode()))
        return headers

    async def send_upstream(
        self,
        send: Send,
        request: Request,
        outcome: Outcome,
        status: bytes,
        http_1_0: bool,
        tier: bool = False,
    ) -> None:
        response = outcome.response
        assert response is not None
        headers = self._relayed_headers(response.headers, outcome.collapsed, status, tier)
        bodiless = response.status in (204, 304) or response.status < 200
        if bodiless:  # RFC 9110 §8.6; a server would wait for the length's worth of body
            headers = no_body_headers(headers, http_1_0)
        elif response.rest is None:
            if request.method != "HEAD" or response.body:  # a forwarded HEAD's is the GET's
                headers = [(k, v) for k, v in headers if k not in _LENGTH]
                headers.append((b"content-length", str(len(response.body)).encode()))
        elif http_1_0 and request.method != "HEAD" and not get_first(headers, b"content-length"):
            await self._send_spooled(send, response, headers)  # HTTP/1.0 has no chunked coding
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        if request.method == "HEAD" or bodiless or response.rest is None:
            empty = bodiless or request.method == "HEAD"
            await send({"type": "http.response.body", "body": b"" if empty else response.body})
            await response.close()
            return
        await send({"type": "http.response.body", "body": response.body, "more_body": True})
        try:
            async for chunk in response.rest:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamFailure as exc:
            raise BodyAborted(str(exc)) from None
        finally:
            await response.close()
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
            except UpstreamFailure as exc:
                detail = f"{response.upstream} broke off after {size} bytes: {exc}"
                error = BadGateway(detail, accepted=[{"upstream": response.upstream}])
                await self.send_error(send, error, cache_status(self.name, fwd="miss"))
                return
            finally:
                await response.close()
            headers.append((b"content-length", str(size).encode()))
            start = {"type": "http.response.start", "status": response.status}
            await send({**start, "headers": headers})
            spool.seek(0)
            while chunk := spool.read(SPOOL_CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    async def send_error(self, send: Send, error: OutpostError, status: bytes) -> None:
        body = error.body()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            (b"cache-status", status),
            (EPOCH_HEADER, str(self.epoch.value).encode()),
            *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()),
        ]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def ranged(
    entry: Entry,
    headers: list[tuple[bytes, bytes]],
    wanted: bytes,
    special: list[tuple[bytes, bytes]],
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A stored complete answer's reply to a Range request (RFC 9110 §14): 206 with the
    range, 416 when no byte of it exists, or the whole 200 (several ranges, another unit, an
    If-Range the entry no longer satisfies: all allowed to be ignored)."""
    length = len(entry.body)
    if_range = next((v for k, v in special if k == b"if-range"), None)
    date = get_first(entry.headers, b"date")
    if if_range is not None and not if_range_holds(if_range, entry.etag, entry.last_modified, date):
        return entry.status, headers, entry.body
    answer = parse_range(wanted, length)
    kept = [(k, v) for k, v in headers if k not in _LENGTH]
    if isinstance(answer, Partial):
        part = partial_headers(kept, answer.first, answer.last, length)
        part.append((b"content-length", b"%d" % (answer.last - answer.first + 1)))
        return 206, part, entry.body[answer.first : answer.last + 1]
    if isinstance(answer, Unsatisfiable):
        refused = [(k, v) for k, v in kept if k not in _BODY_FIELDS]
        return 416, [*refused, *unsatisfiable_headers(length), (b"content-length", b"0")], b""
    return entry.status, headers, entry.body


def no_body_headers(
    headers: list[tuple[bytes, bytes]], http_1_0: bool = False
) -> list[tuple[bytes, bytes]]:
    """Headers of a 304 (or 204): no body, so no Content-Length (RFC 9110 §8.6; granian drops
    it anyway); an HTTP/1.0 client also gets `Connection: close`, so no server leaves it
    waiting on an open connection for a body length it was never told."""
    dropped = (b"content-length", b"content-type", b"content-encoding")
    kept = [(k, v) for k, v in headers if k not in dropped]
    return [*kept, (b"connection", b"close")] if http_1_0 else kept
