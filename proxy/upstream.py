"""Upstreams: an ordered list (parents first, then origin servers) walked with failover.

A request goes to the first upstream whose circuit is closed. A connect error, a timeout, a 5xx
or a body that fails the caller's check (a payload whose bytes do not match its hash) counts as
a failure and moves on to the next; `breaker_failures` failures in a row open an upstream's
circuit for `breaker_cooldown` seconds, after which one request probes it again. When every
upstream failed, the list is walked again after a jittered back-off, at most `retries` times,
then `AllUpstreamsFailed` names every attempt and why it failed. The walk is
`outpost.failover.Rounds`, the one the client library uses; this module is its I/O driver.
The HTTP client's errors are its own (`proxy.http_client`) and never leak out.

Bodies up to `max_body` are read whole; a larger one comes back as a stream to pass through.
A caller that asks (`relay_from`) gets a 200 of a declared length from `relay_from` up to
`max_body` back as soon as its head arrives, `relayed`, with the body to read from `rest`; it
checks the body itself and reports a bad one with `blame`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from outpost.accesslog import ACCESS_NOTE
from outpost.errors import BadGateway, BadRequest
from outpost.failover import CoolDown, Rounds, Wait
from outpost.redact import redact_text, redact_url
from proxy.core.epochs import EPOCH_HEADER, parse_epoch
from proxy.core.headers import end_to_end, get_first
from proxy.http_client import (
    Body,
    HttpClient,
    Interim,
    Unsendable,
    UpstreamFailure,
    UpstreamTimeout,
)

__all__ = [
    "AllUpstreamsFailed",
    "Attempt",
    "UnsendableRequest",
    "UpstreamFailure",
    "UpstreamResponse",
    "Upstreams",
]

Check = Callable[["UpstreamResponse"], str | None]
PROBE_PATH = "/_outpost/healthz"
PROBE_SECONDS = 2.0
PROBE_REUSE_SECONDS = 0.2  # at most five probe rounds a second, however many ask


@dataclass(frozen=True)
class Attempt:
    upstream: str  # redacted: attempts go to clients
    error: str


class AllUpstreamsFailed(BadGateway):
    """Every upstream failed; `accepted` lists each attempt (upstream, error). `answer` is the
    last 5xx answer an upstream gave (read whole), if any: once every upstream was tried, a
    client gets that real answer rather than the proxy's own 502 (RFC 9111 is silent on
    failover; squid and Varnish pass the origin's error on)."""

    def __init__(self, attempts: list[Attempt], answer: UpstreamResponse | None = None) -> None:
        tried = "; ".join(f"{a.upstream}: {a.error}" for a in attempts) or "no upstream configured"
        super().__init__(
            f"every upstream failed ({tried})",
            accepted=[{"upstream": a.upstream, "error": a.error} for a in attempts],
        )
        self.attempts = attempts
        self.answer = answer


class UnsendableRequest(BadRequest):
    """The request cannot be sent upstream as it is (a field value the HTTP client refuses)."""


@dataclass
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]  # end-to-end, lower-case names
    body: bytes
    upstream: str
    epoch: int | None
    rest: Body | None = None  # the remainder of an over-sized body, or a relayed one
    relayed: bool = False  # `rest` is all of a body of `length` bytes, for the caller to check
    length: int | None = None  # the declared Content-Length
    source: str = ""  # the upstream's URL, unredacted: for `Upstreams.blame`
    interim: list[Interim] = field(default_factory=list)  # 1xx answers before this one

    async def close(self) -> None:
        if self.rest is not None:
            await self.rest.aclose()


@dataclass
class Upstreams:
    urls: list[str]
    client: HttpClient
    clock: Callable[[], int]  # µs
    retries: int = 1
    backoff: float = 0.05
    breaker_failures: int = 3
    breaker_cooldown: float = 5.0
    max_body: int = 64 * 1024 * 1024
    on_failure: Callable[[str, str], None] = lambda upstream, kind: None  # kind: for metrics
    jitter: Callable[[], float] = random.random
    _breaker: CoolDown[str] = field(init=False)
    _probe: asyncio.Future[dict[str, dict[str, object]]] | None = field(init=False, default=None)
    _probed_at: float = field(init=False, default=float("-inf"))

    def __post_init__(self) -> None:
        self.urls = [url.rstrip("/") for url in self.urls]
        self._breaker = CoolDown(self.breaker_cooldown, after=self.breaker_failures)

    def _now(self) -> float:
        return self.clock() / 1_000_000

    def health(self) -> dict[str, dict[str, object]]:
        now = self._now()
        return {
            redact_url(url): {
                "up": not self._breaker.cooling(url, now),
                "consecutive_failures": self._breaker.failures.get(url, 0),
            }
            for url in self.urls
        }

    async def probe(self, timeout: float = PROBE_SECONDS) -> dict[str, dict[str, object]]:
        """Ask every upstream for `/_outpost/healthz` now, at once: the breaker only knows how
        past fetches went, and says nothing of an upstream that died since. Reachable means
        it answered at all (a plain HTTP origin answers 404 there); `status` is its answer.
        Anyone may ask (`/_outpost/status?probe=1`), so askers share one probe in flight and
        its answer for `PROBE_REUSE_SECONDS`: no client can make the proxy flood upstreams."""
        loop = asyncio.get_running_loop()
        if self._probe is None or (
            self._probe.done() and loop.time() - self._probed_at > PROBE_REUSE_SECONDS
        ):
            self._probe = asyncio.ensure_future(self._probe_all(timeout))
            self._probe.add_done_callback(lambda _: setattr(self, "_probed_at", loop.time()))
        return await asyncio.shield(self._probe)

    async def _probe_all(self, timeout: float) -> dict[str, dict[str, object]]:

        async def one(url: str) -> dict[str, object]:
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                async with asyncio.timeout(timeout):
                    answer = await self.client.send("GET", url, PROBE_PATH, [], None)
                    await answer.aclose()
            except (UpstreamFailure, Unsendable, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
                return {"reachable": False, "error": redact_text(reason)[:200]}
            ms = round((loop.time() - started) * 1000, 1)
            return {"reachable": True, "status": answer.status, "ms": ms}

        results = await asyncio.gather(*(one(url) for url in self.urls))
        return {redact_url(url): result for url, result in zip(self.urls, results, strict=True)}

    def _failed(self, url: str, reason: str, kind: str) -> Attempt:
        self._breaker.failed(url, self._now())
        shown = redact_url(url)
        self.on_failure(shown, kind)
        return Attempt(shown, redact_text(reason))

    def blame(self, response: UpstreamResponse, reason: str, kind: str) -> None:
        """A relayed body turned out bad (`kind`: connect, integrity): count it against the
        upstream that sent it, as a failure inside `fetch` is counted."""
        if response.source in self.urls:
            self._failed(response.source, reason, kind)

    async def fetch(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        *,
        body: bytes | None = None,
        check: Check | None = None,
        failover_on_5xx: bool = True,
        relay_from: int | None = None,
    ) -> UpstreamResponse:
        """The first good answer for `method target` from the list, with failover."""
        attempts: list[Attempt] = []
        answer: UpstreamResponse | None = None  # the last 5xx answered, kept whole
        rounds = Rounds(
            self.urls,
            self._breaker,
            rounds=self.retries + 1,
            backoff=self.backoff,
            cap=self.backoff * 2**self.retries,
            jitter=self.jitter,
        )
        while (step := rounds.next(self._now())) is not None:
            if isinstance(step, Wait):
                if method not in ("GET", "HEAD"):
                    break  # never repeat an unsafe request after it may have arrived
                await asyncio.sleep(step.seconds)
                continue
            url = step.endpoint
            try:
                response = await self._send(url, method, target, headers, body, relay_from)
            except Unsendable as exc:
                # the request itself cannot be sent: no upstream is to blame, none would
                # take it, and the circuit breakers must not count it
                raise UnsendableRequest(redact_text(str(exc))) from None
            except UpstreamTimeout as exc:
                attempts.append(self._failed(url, f"timeout ({exc})", "timeout"))
                continue
            except UpstreamFailure as exc:
                attempts.append(self._failed(url, str(exc), "connect"))
                continue
            if response.status >= 500 and failover_on_5xx:
                await response.close()
                answer = response if response.rest is None else None
                attempts.append(self._failed(url, f"status {response.status}", "status"))
                continue
            problem = check(response) if check and response.rest is None else None
            if problem:
                attempts.append(self._failed(url, problem, "integrity"))
                continue
            rounds.succeeded(url)
            _note(redact_url(url), len(attempts) + 1)
            return response
        _note("-" if answer is None else answer.upstream, len(attempts))
        raise AllUpstreamsFailed(attempts, answer)

    async def _send(
        self,
        url: str,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        relay_from: int | None = None,
    ) -> UpstreamResponse:
        response = await self.client.send(method, url, target, headers, body)
        chunks: list[bytes] = []
        size = 0
        declared = response.content_length
        oversized = declared is not None and declared > self.max_body
        fields = end_to_end(response.headers)
        result = UpstreamResponse(
            status=response.status,
            headers=fields,
            body=b"",
            upstream=redact_url(url),  # shown to clients in errors
            epoch=parse_epoch(get_first(fields, EPOCH_HEADER)),
            length=declared,
            source=url,
            interim=[(status, end_to_end(fields)) for status, fields in response.interim],
        )
        if (
            relay_from is not None
            and response.status == 200
            and declared is not None
            and relay_from <= declared <= self.max_body
            and method == "GET"
            and get_first(fields, b"vary") is None  # one answer for every waiter
        ):
            result.rest, result.relayed = response.chunks, True
            return result
        try:
            if not oversized:
                async for chunk in response.chunks:
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self.max_body:
                        oversized = True
                        break
        except BaseException:
            await response.aclose()
            raise
        result.body = b"".join(chunks)
        if oversized:
            result.rest = response.chunks
        else:
            await response.aclose()
        return result


def _note(upstream: str, attempts: int) -> None:
    """Tell the access log of the request being handled which upstream answered it."""
    note = ACCESS_NOTE.get()
    if note is not None:
        note["upstream"], note["attempts"] = upstream, attempts
