"""One request's walk over the endpoints, and the client-wide bookkeeping walks share.

A driver (the sync `Client` or the `AsyncClient`) asks `walk.next(now)` what to do: `Try` an
endpoint or `Wait` before the next round (the rounds, cool-downs and back-off are
`outpost.failover`'s, shared with the proxy's upstreams). It performs that and reports back
with `walk.failed` (no answer: connect error, timeout) or `walk.answered` (a status and a
body), which either returns the decoded value, returns None to go on, or raises
`RequestRejected` for a 4xx. When every round is spent, `next` raises `AllEndpointsFailed`
(or `IntegrityError`) with each attempt.

What a status means is a table (`VERDICTS`); whatever is not listed fails over. `Failover` holds
what outlives one request: the client's endpoint order, cool-downs and statistics; the sync
client passes a lock so that its worker threads can share it.

Pure: standard library and `outpost` only; `now` and the jitter are passed in, nothing sleeps.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar, assert_never

import orjson

from outpost.client.answers import Unusable
from outpost.client.endpoints import CoolDown, Endpoint
from outpost.client.errors import (
    AllEndpointsFailed,
    Attempt,
    BadRequest,
    FailureKind,
    IntegrityError,
    NotFound,
    RequestRejected,
)
from outpost.failover import Rounds, Try, Wait

__all__ = ["ClientStats", "Failover", "Retry", "Try", "VERDICTS", "Wait", "Walk", "verdict"]

T = TypeVar("T")
Verdict = Literal["accept", "reject", "failover"]

# Exact statuses first, then status classes; anything else (1xx, 3xx, 5xx) fails over.
VERDICTS: Final[dict[int, Verdict]] = {200: "accept", 4: "reject", 5: "failover"}
REJECTIONS: Final[dict[int, type[RequestRejected]]] = {400: BadRequest, 404: NotFound}


def verdict(status: int) -> Verdict:
    return VERDICTS.get(status) or VERDICTS.get(status // 100) or "failover"


@dataclass(frozen=True, slots=True)
class Retry:
    """How hard one request tries: `rounds` walks over the list, back-off between walks."""

    rounds: int = 2
    backoff: float = 0.5
    backoff_cap: float = 8.0


@dataclass
class ClientStats:
    requests: int = 0  # resolve and payload calls
    attempts: int = 0  # GETs sent
    rejected: int = 0  # 4xx answers
    served_by: Counter[str] = field(default_factory=Counter)  # endpoint → answers used
    failures: Counter[FailureKind] = field(default_factory=Counter)  # kind → failed GETs

    @property
    def integrity_errors(self) -> int:
        return self.failures["integrity"]


@dataclass
class Failover:
    """Client-wide state: endpoint order, cool-downs, statistics (guarded by `lock`)."""

    order: tuple[Endpoint, ...]
    cooldown: CoolDown[Endpoint]
    retry: Retry
    jitter: Callable[[], float]  # uniform in [0, 1), e.g. random.Random().random
    stats: ClientStats = field(default_factory=ClientStats)
    lock: contextlib.AbstractContextManager[Any] = field(default_factory=contextlib.nullcontext)

    def walk(self, path: str, *, must_exist: bool = False) -> Walk:
        """A walk for one GET of `path`; `must_exist`: the resource is known to exist (a payload
        a resolve answer named), so a 404 is the endpoint's fault and fails over."""
        with self.lock:
            self.stats.requests += 1
        return Walk(self, path, must_exist=must_exist)

    def plan(self, now: float) -> tuple[Endpoint, ...]:
        """The order a request would try right now: endpoints cooling down last."""
        with self.lock:
            ready = tuple(e for e in self.order if not self.cooldown.cooling(e, now))
        return ready + tuple(e for e in self.order if e not in ready)


class Walk:
    """The attempts of one GET of `path`."""

    def __init__(self, failover: Failover, path: str, *, must_exist: bool = False) -> None:
        self.failover = failover
        self.path = path
        self.must_exist = must_exist
        self.attempts: list[Attempt] = []
        retry = failover.retry
        self._rounds = Rounds(
            failover.order,
            failover.cooldown,
            rounds=retry.rounds,
            backoff=retry.backoff,
            cap=retry.backoff_cap,
            jitter=failover.jitter,
            lock=failover.lock,
        )

    def next(self, now: float) -> Try[Endpoint] | Wait:
        step = self._rounds.next(now)
        if step is None:
            corrupt = any(a.kind == "integrity" for a in self.attempts)
            failure = IntegrityError if corrupt else AllEndpointsFailed
            raise failure(self.path, tuple(self.attempts))
        if isinstance(step, Try):
            with self.failover.lock:
                self.failover.stats.attempts += 1
        return step

    def failed(self, endpoint: Endpoint, kind: FailureKind, detail: str, now: float) -> None:
        self.attempts.append(Attempt(endpoint.url, kind, detail))
        self._rounds.failed(endpoint, now)
        with self.failover.lock:
            self.failover.stats.failures[kind] += 1

    def answered(
        self, endpoint: Endpoint, status: int, body: bytes, decode: Callable[[bytes], T], now: float
    ) -> T | None:
        """The decoded answer, or None to try the next endpoint; raises on a 4xx."""
        if status == 404 and self.must_exist:
            self.failed(endpoint, "status", "status 404 for a resource known to exist", now)
            return None
        match verdict(status):
            case "accept":
                try:
                    value = decode(body)
                except Unusable as problem:
                    self.failed(endpoint, problem.kind, problem.detail, now)
                    return None
                self._succeeded(endpoint, served=True)
                return value
            case "reject":
                self._succeeded(endpoint, served=False)
                rejection = REJECTIONS.get(status, RequestRejected)
                raise rejection(
                    self.path,
                    status,
                    _error_body(body),
                    endpoint=endpoint.url,
                    attempts=tuple(self.attempts),
                )
            case "failover":
                self.failed(endpoint, "status", f"status {status}", now)
                return None
            case unreachable:
                assert_never(unreachable)

    def _succeeded(self, endpoint: Endpoint, *, served: bool) -> None:
        self._rounds.succeeded(endpoint)
        with self.failover.lock:
            if served:
                self.failover.stats.served_by[endpoint.url] += 1
            else:
                self.failover.stats.rejected += 1


def _error_body(body: bytes) -> dict[str, Any] | None:
    """The server's `{"error", "detail", "accepted"}`, or None if the body is not such JSON."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"error": None, "detail": body[:500].decode(errors="replace"), "accepted": None}
    return document if isinstance(document, dict) else None
