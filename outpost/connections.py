"""uvicorn's httptools protocol with the limits of `outpost.limits` enforced on every connection.

httptools keeps a header's bytes until the header ends and has no size limit of its own (a
200 MiB header took a proxy from 77 MB to 692 MB; a 64 MiB one took the origin 35 s to
parse), and uvicorn arms no timer before a connection's first request nor while a head is
incomplete. `LimitedProtocol`, the `http` protocol of `outpost origin` and the base of the
proxy's `HitProtocol`, counts a head's bytes as they arrive and refuses it past
`max_header_bytes` or `max_header_count` (431), closes a connection whose head is not complete
`header_timeout` after the connection opened or the head's first byte arrived (408 if part of
a head came), and answers 503 to the connections over `max_connections` of this process.

Refusals are JSON answers of `outpost.errors` with `Connection: close`; then the write side is
shut and what the client still sends is read and dropped for up to `LINGER_SECONDS`
(`_Lingering`), so a client still sending its request reads the answer rather than a reset.
At most `LimitedProtocol.max_lingering` connections linger (half the descriptor reserve): past
that a refused connection is closed at once, so a flood of refusals cannot eat the reserve.

Cost on the hit path: one timer per connection, re-armed only when it fires while a head is
open; per request a clock read and a few integer checks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from outpost import draining
from outpost.errors import (
    BadRequest,
    HeaderFieldsTooLarge,
    OutpostError,
    RequestTimeout,
    ServiceUnavailable,
)
from outpost.limits import ConnectionLimits, error_answer

__all__ = ["LINGER_SECONDS", "RETRY_AFTER_SECONDS", "LimitedProtocol", "find_limits"]

LINGER_SECONDS = 2.0  # how long a refused connection is drained before it is closed
RETRY_AFTER_SECONDS = 2  # Retry-After of the 503 at the connection cap


def find_limits(app: Any) -> ConnectionLimits:
    """The limits the loaded app carries (`connection_limits` on it or on its `state`; uvicorn
    may wrap it in middleware), else the defaults. Found through the app so that uvicorn's
    worker processes, which rebuild the app, find their own."""
    for _ in range(8):
        for holder in (app, getattr(app, "state", None)):
            limits = getattr(holder, "connection_limits", None)
            if isinstance(limits, ConnectionLimits):
                return limits
        app = getattr(app, "app", None)
        if app is None:
            break
    return ConnectionLimits()


class _Refused(Exception):
    """Raised in a parser callback to stop parsing a head that broke a limit."""


class LimitedProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = find_limits(self.app)
        self.max_header_bytes = limits.max_header_bytes
        self.max_header_count = limits.max_header_count
        self.header_timeout = limits.header_timeout
        self.max_connections = limits.max_connections
        self.max_lingering = limits.max_lingering
        self.head_since: float | None = None  # when the open head started; None: no head open
        self.head_begun = False  # a byte of the open head arrived
        self.head_raw = 0  # bytes of whole reads that fell inside the open head
        self.head_fields = 0  # bytes of the head's completed header fields
        self.header_timer: asyncio.TimerHandle | None = None
        self.refusal: OutpostError | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.transport = transport
            busy = ServiceUnavailable(
                f"this server has {len(self.connections)} connections open, its limit",
                accepted=f"a connection while fewer than {self.max_connections} are open",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
            self.logger.debug("refused a connection: %s", busy.detail)
            self._close_with(busy)
            return
        super().connection_made(transport)
        self.head_since = self.loop.time()
        self._arm(self.head_since)

    def shutdown(self) -> None:
        """The server is shutting down: long polls answer now (`outpost.draining`)."""
        draining.begin()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.head_since is not None:  # a head is open: all of this read is head or beyond
            self.head_raw += len(data)
        HttpToolsProtocol.data_received(self, data)
        # Still open after the read (no head completed in it): the read was all head bytes.
        if self.head_raw > self.max_header_bytes and self.head_since is not None:
            self.refuse(self._too_large(f"over {self.max_header_bytes} bytes"))

    def on_message_begin(self) -> None:
        # uvicorn's on_message_begin, inlined (hit path) but for the request's scope, which
        # `on_head_accepted` builds: a hit answered below ASGI never needs one
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.head_begun = True
        if self.head_since is None:
            self.head_since = self.loop.time()
            if self.header_timer is None:
                self._arm(self.head_since)

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's on_header, inlined (hit path), after the limits
        self.head_fields += len(name) + len(value)
        if self.head_fields > self.max_header_bytes:
            self._stop(self._too_large(f"over {self.max_header_bytes} bytes"))
        if len(self.headers) >= self.max_header_count:
            self._stop(self._too_large(f"more than {self.max_header_count} header fields"))
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        size = len(self.url) + self.head_fields  # the head's accounts close here
        self.head_since = None
        self.head_begun = False
        self.head_raw = self.head_fields = 0
        if size > self.max_header_bytes:
            self._stop(self._too_large(f"over {self.max_header_bytes} bytes ({size})"))
        self.on_head_accepted()

    def on_head_accepted(self) -> None:
        """A head within the limits: its ASGI scope (as uvicorn's on_message_begin makes it),
        then uvicorn makes the request cycle (HitProtocol may answer a hit without either)."""
        self.scope = {  # type: ignore[typeddict-item]
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        HttpToolsProtocol.on_headers_complete(self)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a head the parser refused, as our JSON; or the limit it broke."""
        error = self.refusal or BadRequest(msg, accepted="an HTTP/1.1 request")
        self.refuse(error)

    def refuse(self, error: OutpostError) -> None:
        """Answer `error` and close, unless an answer is already being written: then close."""
        self.refusal = error
        self.head_since = None
        cycle = self.cycle
        if self.transport.is_closing():
            return
        if cycle is not None and not cycle.response_complete:
            self.transport.close()
            return
        self.connections.discard(self)  # the connection leaves this protocol
        self._unset_keepalive_if_required()
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        self._close_with(error)

    def _close_with(self, error: OutpostError) -> None:
        answer = error_answer(error, self.server_state.default_headers)
        if _Lingering.count < self.max_lingering:
            _Lingering(self.transport, self.loop, answer)
        else:
            self.transport.write(answer)
            self.transport.close()

    def _arm(self, since: float) -> None:
        self.header_timer = self.loop.call_at(since + self.header_timeout, self._header_deadline)

    def _header_deadline(self) -> None:
        self.header_timer = None
        since = self.head_since
        if since is None or self.transport.is_closing():
            return  # no head open: the keep-alive timer watches an idle connection
        if self.loop.time() < since + self.header_timeout:
            self._arm(since)  # a later head than the one this timer was armed for
        elif self.head_begun:
            self.refuse(
                RequestTimeout(
                    f"the request head was not complete after {self.header_timeout:g} s",
                    accepted=f"a whole request head within {self.header_timeout:g} s",
                )
            )
        else:
            self.transport.close()  # nothing was sent: nobody to answer

    def _too_large(self, what: str) -> HeaderFieldsTooLarge:
        return HeaderFieldsTooLarge(
            f"request head {what}",
            accepted={
                "max_header_bytes": self.max_header_bytes,
                "max_header_count": self.max_header_count,
            },
        )

    def _stop(self, error: OutpostError) -> None:
        self.refusal = error
        raise _Refused(error.detail)  # the parser fails; uvicorn calls send_400_response


class _Lingering(asyncio.Protocol):
    """A refused connection: the answer written, the write side shut, whatever else the client
    sends read and dropped until it closes or `LINGER_SECONDS` pass."""

    count = 0  # lingering connections of this process

    def __init__(
        self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop, answer: bytes
    ) -> None:
        self.transport = transport
        _Lingering.count += 1
        transport.set_protocol(self)
        transport.write(answer)
        if transport.can_write_eof():
            transport.write_eof()
        self.timer = loop.call_later(LINGER_SECONDS, transport.close)
        if not transport.is_reading():
            transport.resume_reading()  # uvicorn pauses reading behind pipelined requests

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def connection_lost(self, exc: Exception | None) -> None:
        _Lingering.count -= 1
        self.timer.cancel()
