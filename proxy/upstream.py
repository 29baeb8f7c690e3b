"""Upstreams: an ordered list (parents first, then origin servers) walked with failover.

A request goes to the first upstream whose circuit is closed. A connect error, a timeout, a 5xx
or a body that fails the caller's check (a payload whose bytes do not match its hash) counts as
a failure and moves on to the next; `breaker_failures` failures in a row open an upstream's
circuit for `breaker_cooldown` seconds, after which one request probes it again. When every
upstream failed, the list is walked again after a jittered back-off, at most `retries` times,
then `AllUpstreamsFailed` names every attempt and why it failed. httpx errors never leak out.

Bodies up to `max_body` are read whole; a larger one comes back as a stream to pass through.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.cookiejar import Cookie, CookieJar
from typing import Any

import httpx

from outpost.errors import BadGateway, BadRequest
from outpost.redact import redact_text, redact_url
from proxy.core.epochs import EPOCH_HEADER, parse_epoch
from proxy.core.headers import end_to_end, get_first

__all__ = [
    "AllUpstreamsFailed",
    "Attempt",
    "NoCookies",
    "UnsendableRequest",
    "UpstreamResponse",
    "Upstreams",
]

Check = Callable[["UpstreamResponse"], str | None]


@dataclass(frozen=True)
class Attempt:
    upstream: str  # redacted: attempts go to clients
    error: str


class AllUpstreamsFailed(BadGateway):
    """Every upstream failed; `accepted` lists each attempt (upstream, error)."""

    def __init__(self, attempts: list[Attempt]) -> None:
        tried = "; ".join(f"{a.upstream}: {a.error}" for a in attempts) or "no upstream configured"
        super().__init__(
            f"every upstream failed ({tried})",
            accepted=[{"upstream": a.upstream, "error": a.error} for a in attempts],
        )
        self.attempts = attempts


class UnsendableRequest(BadRequest):
    """The request cannot be sent upstream as it is (a field value the HTTP client refuses)."""


class NoCookies(CookieJar):
    """A cookie jar that keeps nothing: the proxy's upstream client fetches for every client at
    once, so a `Set-Cookie` one upstream answer carries must never ride on later requests."""

    def set_cookie(self, cookie: Cookie) -> None:
        return None

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


@dataclass
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]  # end-to-end, lower-case names
    body: bytes
    upstream: str
    epoch: int | None
    rest: AsyncIterator[bytes] | None = None  # the remainder of an over-sized body
    close: Callable[[], object] | None = None


@dataclass
class _Circuit:
    failures: int = 0
    open_until: int = 0


@dataclass
class Upstreams:
    urls: list[str]
    client: httpx.AsyncClient
    clock: Callable[[], int]
    retries: int = 1
    backoff: float = 0.05
    breaker_failures: int = 3
    breaker_cooldown: float = 5.0
    max_body: int = 64 * 1024 * 1024
    on_failure: Callable[[str, str], None] = lambda upstream, kind: None  # kind: for metrics
    _circuits: dict[str, _Circuit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.urls = [url.rstrip("/") for url in self.urls]
        self._circuits = {url: _Circuit() for url in self.urls}

    def health(self) -> dict[str, dict[str, object]]:
        now = self.clock()
        return {
            redact_url(url): {"up": c.open_until <= now, "consecutive_failures": c.failures}
            for url, c in self._circuits.items()
        }

    def _order(self) -> list[str]:
        """Closed circuits first, in list order; open ones last, as probes of last resort."""
        now = self.clock()
        closed = [u for u in self.urls if self._circuits[u].open_until <= now]
        return closed + [u for u in self.urls if u not in closed]

    def _failed(self, url: str, reason: str, kind: str) -> Attempt:
        circuit = self._circuits[url]
        circuit.failures += 1
        if circuit.failures >= self.breaker_failures:
            circuit.open_until = self.clock() + int(self.breaker_cooldown * 1_000_000)
        shown = redact_url(url)
        self.on_failure(shown, kind)
        return Attempt(shown, redact_text(reason))

    def _succeeded(self, url: str) -> None:
        circuit = self._circuits[url]
        circuit.failures, circuit.open_until = 0, 0

    async def fetch(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        *,
        body: bytes | None = None,
        check: Check | None = None,
        failover_on_5xx: bool = True,
    ) -> UpstreamResponse:
        """The first good answer for `method target` from the list, with failover."""
        attempts: list[Attempt] = []
        for round_ in range(self.retries + 1):
            if round_:
                await asyncio.sleep(self.backoff * (2 ** (round_ - 1)) * random.uniform(0.5, 1.5))
            for url in self._order():
                try:
                    response = await self._send(url, method, target, headers, body)
                except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeError) as exc:
                    # the request itself cannot be sent: no upstream is to blame, none would
                    # take it, and the circuit breakers must not count it
                    raise UnsendableRequest(redact_text(f"{type(exc).__name__}: {exc}")) from None
                except httpx.TimeoutException as exc:
                    attempts.append(self._failed(url, f"timeout ({type(exc).__name__})", "timeout"))
                    continue
                except (httpx.HTTPError, OSError) as exc:
                    attempts.append(
                        self._failed(url, f"{type(exc).__name__}: {exc}"[:200], "connect")
                    )
                    continue
                if response.status >= 500 and failover_on_5xx:
                    await _discard(response)
                    attempts.append(self._failed(url, f"status {response.status}", "status"))
                    continue
                problem = check(response) if check and response.rest is None else None
                if problem:
                    attempts.append(self._failed(url, problem, "integrity"))
                    continue
                self._succeeded(url)
                return response
            if method not in ("GET", "HEAD"):
                break  # never repeat an unsafe request after it may have arrived
        raise AllUpstreamsFailed(attempts)

    async def _send(
        self,
        url: str,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
    ) -> UpstreamResponse:
        request = self.client.build_request(method, url + target, headers=headers, content=body)
        response = await self.client.send(request, stream=True)
        chunks: list[bytes] = []
        size = 0
        declared = response.headers.get("content-length")
        oversized = declared is not None and declared.isdigit() and int(declared) > self.max_body
        stream = response.aiter_raw()
        try:
            if not oversized:
                async for chunk in stream:
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self.max_body:
                        oversized = True
                        break
        except BaseException:
            await response.aclose()
            raise
        raw_headers = response.headers.raw
        result = UpstreamResponse(
            status=response.status_code,
            headers=end_to_end(raw_headers),
            body=b"".join(chunks),
            upstream=redact_url(url),  # shown to clients in errors
            epoch=parse_epoch(get_first(end_to_end(raw_headers), EPOCH_HEADER)),
        )
        if oversized:
            result.rest, result.close = stream, response.aclose
        else:
            await response.aclose()
        return result


async def _discard(response: UpstreamResponse) -> None:
    if response.close is not None:
        await _maybe_await(response.close())


async def _maybe_await(value: object) -> None:
    if asyncio.iscoroutine(value):
        await value
