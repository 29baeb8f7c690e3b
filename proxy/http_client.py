"""The proxy's HTTP client for upstream fetches: one keep-alive pool per upstream, over aiohttp.

A cold start sends hundreds of distinct fetches at once. httpx's `AsyncClient` spent most of such
a stampede assigning requests to pooled connections (encode/httpcore#1035: 22 of 33 CPU seconds
of the 200 URLs x 10 requests benchmark); aiohttp's connector does not, and its response parser
is llhttp in C (`benchmarks/cold_stampede.py`).

`Upstreams` only sees `HttpClient`: a request goes out as given and comes back as a status, the
raw header fields and a stream of body bytes. The client adds nothing a shared fetch did not
choose (no cookies kept, no Accept-Encoding or User-Agent of its own, no redirects followed, the
target sent byte for byte as the cache key) and its failures are ours (`UpstreamTimeout`,
`UpstreamUnreachable`, `Unsendable`), so no library error reaches a caller.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp.connector import Connection
from yarl import URL

__all__ = [
    "AiohttpClient",
    "HttpClient",
    "Interim",
    "RawResponse",
    "Unsendable",
    "UpstreamFailure",
    "UpstreamTimeout",
    "UpstreamUnreachable",
]


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e]*")
_TARGET = re.compile(r"/[\x21-\x7e]*")


class UpstreamFailure(Exception):
    """An upstream could not be asked or broke off its answer: the walk moves on."""


class UpstreamTimeout(UpstreamFailure):
    pass


class UpstreamUnreachable(UpstreamFailure):
    pass


class Unsendable(ValueError):
    """The request itself cannot go on the wire (a field or target HTTP/1.1 does not allow)."""


Interim = tuple[int, list[tuple[bytes, bytes]]]  # a 1xx answer's status and fields
MAX_INTERIM = 8  # interim answers kept per request; an upstream may send any number


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]  # as received
    chunks: Body  # raises UpstreamFailure if the upstream breaks off
    content_length: int | None  # declared, when the answer declares one
    interim: list[Interim] = field(default_factory=list)  # 1xx answers before it, not 101

    async def aclose(self) -> None:
        """Give the connection back (or close it, if the body was not read to the end)."""
        await self.chunks.aclose()


class Body(Protocol):
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class HttpClient(Protocol):
    async def send(
        self,
        method: str,
        base: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes | None,
    ) -> RawResponse: ...

    async def aclose(self) -> None: ...


def check_sendable(target: str, headers: Sequence[tuple[bytes, bytes]]) -> None:
    """Refuse what no upstream should receive: a target or field that would split the request."""
    if not _TARGET.fullmatch(target):
        raise Unsendable(f"request target {target[:80]!r} is not an origin-form target")
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise Unsendable(f"field name {name[:40]!r} is not a token")
        if not _FIELD_VALUE.fullmatch(value):
            raise Unsendable(f"field {name.decode('latin-1')} has a control character")


class AiohttpClient:
    """`HttpClient` over one aiohttp session (its connector keeps a pool per upstream)."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int = 512,
        keepalive_seconds: float = 30.0,
        user_agent: str = "outpost-proxy",
    ) -> None:
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.max_connections, self.keepalive_seconds = max_connections, keepalive_seconds
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # made on first use: aiohttp binds a session to the running event loop
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=0,
            keepalive_timeout=self.keepalive_seconds,
            ttl_dns_cache=60,
        )
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.connect_timeout, sock_read=self.read_timeout
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),  # fetches are shared: keep no cookie state
            response_class=_InterimKeeping,
            auto_decompress=False,  # bytes are stored and relayed as the upstream coded them
            headers={"User-Agent": self.user_agent},
            skip_auto_headers=("Accept-Encoding",),
            trust_env=False,
        )

    async def send(
        self,
        method: str,
        base: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes | None,
    ) -> RawResponse:
        check_sendable(target, headers)
        if self._session is None:
            self._session = self._open()
        try:
            url = URL(base + target, encoded=True)  # the key's bytes, never re-quoted
        except ValueError as exc:
            raise Unsendable(f"upstream URL: {exc}") from None
        fields = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        try:
            response = await self._session.request(
                method, url, headers=fields, data=body, allow_redirects=False
            )
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(type(exc).__name__) from None
        except (aiohttp.InvalidURL, aiohttp.InvalidUrlClientError) as exc:
            raise Unsendable(f"upstream URL: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnreachable(f"{type(exc).__name__}: {exc}"[:200]) from None
        declared = response.content_length
        interim = response.interim if isinstance(response, _InterimKeeping) else []
        raw = list(response.raw_headers)
        return RawResponse(response.status, raw, _Body(response), declared, interim)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _InterimKeeping(aiohttp.ClientResponse):
    """A response that keeps the interim (1xx) answers read before it, which aiohttp reads
    past (a proxy forwards them: RFC 9110 §15.2). aiohttp has no hook for them, so the
    connection's `read` is wrapped while the head is read, and unwrapped at once."""

    interim: list[Interim]

    async def start(self, connection: Connection) -> aiohttp.ClientResponse:
        self.interim = []
        protocol = connection.protocol
        if protocol is None:
            return await super().start(connection)
        read = protocol.read

        async def reading() -> Any:
            message, payload = await read()
            code = message.code
            if 100 <= code < 200 and code != 101 and len(self.interim) < MAX_INTERIM:
                fields = [(k.lower(), v) for k, v in message.raw_headers]
                self.interim.append((code, fields))
            return message, payload

        protocol.read = reading  # type: ignore[method-assign]
        try:
            return await super().start(connection)
        finally:
            del protocol.read  # the class's own again


class _Body:
    """A response body as an async iterator of chunks, our errors only."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self.response.content
        try:
            while True:  # a chunk as it was received: `readany` would join what is buffered
                chunk, _ = await content.readchunk()
                if chunk:
                    yield chunk
                elif content.at_eof():  # else the end of one chunk of a chunked body
                    return
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            self.response.close()
            raise UpstreamTimeout(f"reading the body: {type(exc).__name__}") from None
        except (aiohttp.ClientError, OSError) as exc:
            self.response.close()
            detail = f"reading the body: {type(exc).__name__}: {exc}"
            raise UpstreamUnreachable(detail[:200]) from None

    async def aclose(self) -> None:
        self.response.release()  # closes the connection instead if the body was not all read
