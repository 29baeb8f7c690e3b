"""Forward-proxy requests: where a request is going, and whether this proxy stands in for it.

A Frontier client with a proxy configured (FRONTIER_PROXY, a site squid) sends the absolute
form, `GET http://origin.example:8000/FrontierProd/Frontier/type=… HTTP/1.0`, with `Host:
origin.example` (frontier_client writes the host without the port). The proxy never connects to
that destination: it answers from its cache or its own upstream chain, keyed on path and query.
The destination is only checked against `forward_destinations`, host or host:port patterns as
in frontier-squid's RESTRICT_DEST:

    origin.example            that host, any port
    origin.example:8000       that host, port 8000
    *.cern.ch                 any host under cern.ch (not cern.ch itself), any port
    [2001:db8::1]:8000        an IPv6 literal (bracketed; without a port, brackets optional)

Host names compare case-insensitively and without a trailing dot; IPv6 literals compare as
addresses. A destination's port is compared only when the request states one: an absolute-form
target always does (80 for http, 443 for https when absent), a Host header without a port (what
frontier_client sends) does not, and then a host:port pattern matches on its host.

The destination is the absolute-form target's authority when the HTTP server passes it to the
app (uvicorn's h11 implementation does: `raw_path` is `http://host:port/path`); uvicorn's
httptools implementation and granian pass only the path, and then the Host header names it (RFC
9110 §7.2). A userinfo part (`http://allowed.example@evil/`) makes a target invalid.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DEFAULT_PORTS",
    "Authority",
    "DestinationPattern",
    "Destinations",
    "names_proxy",
    "parse_authority",
    "parse_pattern",
    "split_absolute_target",
]

DEFAULT_PORTS = {"http": 80, "https": 443}
_NAME = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")


@dataclass(frozen=True, slots=True)
class Authority:
    host: str  # lower case, no trailing dot; an IPv6 literal in its compressed form, no brackets
    port: int | None = None  # None: the request did not say

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def _host(text: str, *, bracketed: bool) -> str | None:
    if bracketed or text.count(":") > 1:
        if "%" in text:  # a zone: meaningless to anyone but the sender
            return None
        try:
            return ipaddress.IPv6Address(text).compressed
        except ValueError:
            return None
    name = text.lower()
    name = name[:-1] if name.endswith(".") else name
    return name if _NAME.fullmatch(name) else None


def _port(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        return None
    port = int(text)
    return port if 0 < port < 65536 else None


def parse_authority(text: str, *, default_port: int | None = None) -> Authority | None:
    """`host`, `host:port`, `[v6]`, `[v6]:port` (a Host header, an authority) or None if invalid.

    A missing or empty port is `default_port`. A userinfo part (`user@host`) is invalid.
    """
    text = text.strip()
    if not text or "@" in text or any(c.isspace() or not c.isprintable() for c in text):
        return None
    if text.startswith("["):
        inner, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        host, port_text = _host(inner, bracketed=True), rest[1:]
    elif text.count(":") > 1:  # a bare IPv6 literal: no port possible
        host, port_text = _host(text, bracketed=False), ""
    else:
        name, _, port_text = text.partition(":")
        host = _host(name, bracketed=False)
    if host is None:
        return None
    if not port_text:
        return Authority(host, default_port)
    port = _port(port_text)
    return Authority(host, port) if port is not None else None


def split_absolute_target(raw_path: str) -> tuple[Authority, str] | None:
    """`http://host:port/path` → (authority, `/path`); None when not a valid http(s) target."""
    scheme, separator, rest = raw_path.partition("://")
    default = DEFAULT_PORTS.get(scheme.lower())
    if not separator or default is None:
        return None
    authority_text, slash, path = rest.partition("/")
    authority = parse_authority(authority_text, default_port=default)
    if authority is None:
        return None
    return authority, "/" + path if slash else "/"


@dataclass(frozen=True, slots=True)
class DestinationPattern:
    host: str  # the host, or for a wildcard the domain after `*.`
    wildcard: bool = False
    port: int | None = None

    def matches(self, authority: Authority) -> bool:
        if self.port is not None and authority.port is not None and authority.port != self.port:
            return False
        if self.wildcard:
            return authority.host.endswith("." + self.host)
        return authority.host == self.host

    def __str__(self) -> str:
        host = str(Authority(self.host, self.port))
        return f"*.{host}" if self.wildcard else host


def parse_pattern(text: str) -> DestinationPattern:
    """One `forward_destinations` entry; ValueError saying what is accepted otherwise."""
    stripped = text.strip()
    wildcard = stripped.startswith("*.")
    authority = parse_authority(stripped[2:] if wildcard else stripped)
    if authority is None or (wildcard and ":" in authority.host):
        raise ValueError(
            f"{text!r} is not a destination: expected host, host:port, *.domain[:port] "
            "or [IPv6]:port"
        )
    return DestinationPattern(authority.host, wildcard, authority.port)


class Destinations:
    """The allow-list of forward-proxy destinations; empty means forward mode is off."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(parse_pattern(p) for p in patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def allows(self, authority: Authority) -> bool:
        return any(pattern.matches(authority) for pattern in self.patterns)

    def __str__(self) -> str:
        return ", ".join(str(p) for p in self.patterns)


def names_proxy(authority: Authority, names: frozenset[str], ports: frozenset[int]) -> bool:
    """Whether a request's Host names this proxy itself (an ordinary, origin-form request).

    `names`: the proxy's own host names and addresses; `ports`: the ports it is reached at. A
    Host carrying one of those ports counts as this proxy whatever its name (children and
    clients use names the proxy cannot know); a Host without a port only by its name.
    """
    if authority.port is not None and authority.port in ports:
        return True
    return authority.host in names
