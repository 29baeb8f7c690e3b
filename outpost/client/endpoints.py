"""Endpoints: where a farm node sends its GETs, in which order, and which to skip for a while.

A node is configured with two lists in failover order, proxies then servers (`OUTPOST_PROXIES`,
`OUTPOST_SERVERS`): entries separated by `,`; inside one entry `|` separates the members of a
load-balanced group, as in CVMFS proxy groups: `http://node:8081,http://siteA:8080|http://siteB:8080`.
Each client shuffles every group once (`preference`), so a farm's nodes spread over a group while
one node keeps using the same member, and its cache; a request fails over within a group before it
moves to the next entry. Proxies are used the Outpost way: the canonical path goes to the proxy's
own base URL, never as an HTTP forward-proxy request.

An endpoint that failed cools down for `seconds`: it is skipped until then unless nothing else is
left. Back-off between walks over the whole list doubles per round, jittered, up to a cap (both
from `outpost.failover`, which the proxy's upstreams share).

Pure: standard library only; `now` and the jitter are parameters, nothing here sleeps.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from outpost.client.errors import ConfigError
from outpost.failover import CoolDown, backoff_delay

__all__ = [
    "CoolDown",
    "Endpoint",
    "Group",
    "Role",
    "backoff_delay",
    "parse_endpoints",
    "preference",
]

Role = Literal["proxy", "server"]
ACCEPTED = "http(s)://host[:port][/prefix] entries separated by ',', group members by '|'"


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str  # base URL without a trailing slash; the canonical path is appended to it
    role: Role

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True, slots=True)
class Group:
    """One failover entry: members to balance the load over."""

    members: tuple[Endpoint, ...]


def parse_endpoints(spec: str | Sequence[str], role: Role, key: str) -> tuple[Group, ...]:
    """`"a|b,c"` (or `["a|b", "c"]`) → groups in failover order; `key` names the setting in errors.

    Blank input means no entries; an empty entry or member, a URL that is not plain http(s) or
    an endpoint listed twice is a `ConfigError`.
    """
    entries = spec.split(",") if isinstance(spec, str) else list(spec)
    if isinstance(spec, str) and not spec.strip():
        return ()
    groups: list[Group] = []
    seen: set[str] = set()
    for entry in entries:
        members: list[Endpoint] = []
        for raw in entry.split("|"):
            url = _base_url(raw.strip(), key)
            if url in seen:
                raise ConfigError(f"{key}: {url} is listed twice")
            seen.add(url)
            members.append(Endpoint(url, role))
        groups.append(Group(tuple(members)))
    return tuple(groups)


def _base_url(text: str, key: str) -> str:
    if not text:
        raise ConfigError(f"{key}: empty entry; expected {ACCEPTED}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{key}: {text!r} is not a URL ({exc}); expected {ACCEPTED}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{key}: {text!r} is not an http(s) URL; expected {ACCEPTED}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{key}: {text!r} has a query, fragment or credentials")
    return text.rstrip("/")


def preference(groups: Sequence[Group], rng: random.Random) -> tuple[Endpoint, ...]:
    """Every endpoint in failover order, each group's members in a random order of this client."""
    order: list[Endpoint] = []
    for group in groups:
        members = list(group.members)
        rng.shuffle(members)
        order.extend(members)
    return tuple(order)
