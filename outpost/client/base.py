"""What the sync and the async client share: configuration, bookkeeping, httpx errors mapped.

The drivers (`sync.Client`, `aio.AsyncClient`) differ only in how they wait for I/O; everything
they decide comes from `walk` and `answers`, and httpx exceptions stop here (`transport_failure`).
"""

from __future__ import annotations

import functools
import os
import random
import ssl
import time as _time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Self

import httpx

import outpost
from outpost.client.endpoints import CoolDown, Endpoint, parse_endpoints, preference
from outpost.client.errors import ConfigError, FailureKind
from outpost.client.settings import ClientSettings
from outpost.client.walk import ClientStats, Failover, Retry

__all__ = ["ClientBase", "Endpoints", "http_options", "transport_failure"]

Endpoints = str | Sequence[str]
USER_AGENT: Final = f"outpost-client/{outpost.__version__}"


class ClientBase:
    """Endpoints, settings and the failover state of one client."""

    def __init__(
        self,
        servers: Endpoints = (),
        proxies: Endpoints = (),
        *,
        settings: ClientSettings | None = None,
        clock: Callable[[], float] = _time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings or ClientSettings()
        groups = parse_endpoints(proxies, "proxy", "proxies") + parse_endpoints(
            servers, "server", "servers"
        )
        if not groups:
            raise ConfigError("no endpoint: set OUTPOST_SERVERS and/or OUTPOST_PROXIES")
        duplicated = _duplicates([m for g in groups for m in g.members])
        if duplicated:
            raise ConfigError(f"{duplicated} is both a proxy and a server")
        rng = rng or random.Random()
        self.clock = clock
        self.failover = Failover(
            order=preference(groups, rng),
            cooldown=CoolDown(self.settings.cooldown),
            retry=Retry(self.settings.rounds, self.settings.backoff, self.settings.backoff_cap),
            jitter=rng.random,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> Self:
        """A client configured by `OUTPOST_PROXIES`, `OUTPOST_SERVERS` and `OUTPOST_CLIENT_*`."""
        env = os.environ if environ is None else environ
        options.setdefault("settings", ClientSettings.from_environ(env))
        servers, proxies = env.get("OUTPOST_SERVERS", ""), env.get("OUTPOST_PROXIES", "")
        return cls(servers=servers, proxies=proxies, **options)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Every endpoint in this client's failover order (groups already shuffled)."""
        return self.failover.order

    @property
    def stats(self) -> ClientStats:
        return self.failover.stats

    def plan(self) -> tuple[Endpoint, ...]:
        """The order the next request would try: endpoints cooling down last."""
        return self.failover.plan(self.clock())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(e.url for e in self.endpoints)})"


def _duplicates(endpoints: list[Endpoint]) -> str | None:
    seen: set[str] = set()
    for endpoint in endpoints:
        if endpoint.url in seen:
            return endpoint.url
        seen.add(endpoint.url)
    return None


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: building one (loading the CA bundle) takes ~30 ms."""
    return ssl.create_default_context()


def http_options(settings: ClientSettings) -> dict[str, Any]:
    """httpx client options: timeouts, no environment proxies, no redirects."""
    return {
        "verify": _tls(),
        "timeout": httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        "limits": httpx.Limits(max_connections=2 * settings.concurrency),
        "headers": {"user-agent": USER_AGENT},
        # Outpost proxies are endpoints, not HTTP forward proxies: ignore HTTP_PROXY & co.
        "trust_env": False,
        "follow_redirects": False,
    }


# Most specific first: ConnectTimeout is a TimeoutException, not a ConnectError.
_FAILURES: Final[tuple[tuple[type[Exception], FailureKind], ...]] = (
    (httpx.TimeoutException, "timeout"),
    (httpx.ConnectError, "connect"),
    (httpx.TransportError, "transport"),
    (httpx.DecodingError, "invalid"),
)


def transport_failure(exc: httpx.RequestError) -> tuple[FailureKind, str]:
    """What kind of failure an httpx exception is, and a one-line description."""
    kind: FailureKind = next((k for cls, k in _FAILURES if isinstance(exc, cls)), "transport")
    return kind, f"{kind}: {type(exc).__name__}: {exc}"[:300]
