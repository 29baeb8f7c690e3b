"""Failover over an ordered list of endpoints: one walk, shared by the client library
(`outpost.client.walk`) and the proxy's upstreams (`proxy.upstream`).

A driver asks `Rounds.next(now)` what to do: `Try` an endpoint, `Wait` before the next round,
or None when every round is spent. It reports each try with `failed` or `succeeded`. An endpoint
that failed `after` times in a row cools down for `seconds` (a circuit breaker: the proxy opens
after 3 failures, a farm node's client after 1): it is skipped while others are left, and tried
last otherwise, as a probe. Rounds are separated by a back-off that doubles per round up to a
cap, jittered so that a farm of nodes that failed together does not come back in step.

Pure: `now` and the jitter are passed in, nothing here sleeps; the driver does the I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["CoolDown", "Rounds", "Try", "Wait", "backoff_delay"]

E = TypeVar("E", bound=Hashable)


@dataclass
class CoolDown(Generic[E]):
    """Which endpoints failed recently, and until when they are skipped."""

    seconds: float
    after: int = 1  # failures in a row that start a cool-down
    until: dict[E, float] = field(default_factory=dict)
    failures: dict[E, int] = field(default_factory=dict)

    def failed(self, endpoint: E, now: float) -> None:
        count = self.failures.get(endpoint, 0) + 1
        self.failures[endpoint] = count
        if count >= self.after:
            self.until[endpoint] = now + self.seconds

    def succeeded(self, endpoint: E) -> None:
        self.until.pop(endpoint, None)
        self.failures.pop(endpoint, None)

    def cooling(self, endpoint: E, now: float) -> bool:
        return self.until.get(endpoint, now) > now

    def pick(self, remaining: Sequence[E], now: float) -> E:
        """The first of `remaining` not cooling down, or the first of them if all are."""
        return next((e for e in remaining if not self.cooling(e, now)), remaining[0])


def backoff_delay(round_: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds to wait before walk number `round_` (1 = the first repeat); `jitter` in [0, 1).

    `base·2^(round-1)`, capped, then between half of it and all of it ("equal jitter").
    """
    if round_ <= 0:
        return 0.0
    ceiling: float = min(cap, base * 2.0 ** (round_ - 1))
    return ceiling / 2 + ceiling / 2 * jitter


@dataclass(frozen=True, slots=True)
class Try(Generic[E]):
    endpoint: E


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


class Rounds(Generic[E]):
    """The tries of one request: every endpoint once per round, `rounds` rounds at most."""

    def __init__(
        self,
        order: Sequence[E],
        cooldown: CoolDown[E],
        *,
        rounds: int,
        backoff: float,
        cap: float,
        jitter: Callable[[], float],
        lock: contextlib.AbstractContextManager[Any] | None = None,
    ) -> None:
        self.order, self.cooldown = order, cooldown
        self.rounds, self.backoff, self.cap, self.jitter = rounds, backoff, cap, jitter
        self.lock = lock or contextlib.nullcontext()
        self.round = 0
        self._tried: set[E] = set()

    def next(self, now: float) -> Try[E] | Wait | None:
        remaining = [e for e in self.order if e not in self._tried]
        if remaining:
            with self.lock:
                pick = self.cooldown.pick(remaining, now)
            self._tried.add(pick)
            return Try(pick)
        if self.round + 1 >= self.rounds or not self.order:
            return None
        self.round += 1
        self._tried.clear()
        with self.lock:
            jitter = self.jitter()
        return Wait(backoff_delay(self.round, base=self.backoff, cap=self.cap, jitter=jitter))

    def failed(self, endpoint: E, now: float) -> None:
        with self.lock:
            self.cooldown.failed(endpoint, now)

    def succeeded(self, endpoint: E) -> None:
        with self.lock:
            self.cooldown.succeeded(endpoint)
