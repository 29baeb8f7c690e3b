"""Who may use the cache, and for which destinations: the thin ASGI side of
`proxy.core.clients` (client networks) and `proxy.core.forward` (forward-proxy destinations).

Every request outside `/_outpost/*` passes here first. Verdicts are memoised per client address
(as the server reports it) and per Host value: without forward mode, a hit from a known client
pays `needs_check`, two scope reads and one set lookup.

    client address not in client_networks                       403
    absolute-form target (the server passed it: uvicorn's h11)
        not a valid http(s) URL (userinfo, bad authority)        400
        forward mode off (no forward_destinations)               403
        destination not allowed, not this proxy                  403
        otherwise: served as its path and query
    forward mode on, origin-form as the server shows it
        Host names an allowed destination or this proxy          served
        otherwise                                                403

A Host names this proxy when it carries the port the proxy listens on (or its advertised port),
or one of its names: `host`, the advertised host, the machine's host name, localhost, loopback.
"""

from __future__ import annotations

import socket
from typing import Final
from urllib.parse import unquote, urlsplit

from starlette.types import Scope

from outpost.errors import BadRequest, Forbidden, OutpostError
from proxy.core.clients import ClientNetworks
from proxy.core.forward import (
    Authority,
    Destinations,
    names_proxy,
    parse_authority,
    split_absolute_target,
)
from proxy.core.memo import remember
from proxy.settings import ProxySettings

__all__ = ["Gate", "own_names"]

MEMO_LIMIT: Final = 10_000
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})
_CLIENT_SETTING = {
    "setting": "proxy.client_networks",
    "variable": "OUTPOST_PROXY_CLIENT_NETWORKS",
}


def own_names(settings: ProxySettings) -> tuple[frozenset[str], frozenset[int]]:
    """The host names and ports a request's Host may carry to name this proxy itself."""
    texts = ["localhost", "127.0.0.1", "::1"]
    hostname = socket.gethostname()
    texts += [hostname, hostname.split(".")[0]]
    if settings.host not in _WILDCARDS:
        texts.append(settings.host)
    ports = {settings.port}
    if settings.advertise_url:
        advertised = urlsplit(settings.advertise_url)
        default = 443 if advertised.scheme == "https" else 80
        authority = parse_authority(advertised.netloc, default_port=default)
        if authority is not None:
            texts.append(authority.host)
            ports.add(authority.port or default)
    names = {a.host for a in map(parse_authority, texts) if a is not None}
    return frozenset(names), frozenset(ports)


class Gate:
    def __init__(self, settings: ProxySettings) -> None:
        self.networks = ClientNetworks(settings.client_networks)
        self.destinations = Destinations(settings.forward_destinations)
        self.forward = bool(self.destinations)
        self.names, self.ports = own_names(settings)
        # client addresses, as the server reports them, found in (or out of) client_networks
        self.admitted: set[object] = set()
        self._refused: dict[object, OutpostError] = {}
        self._hosts: dict[bytes, OutpostError | None] = {}

    def needs_check(self, scope: Scope) -> bool:
        """False for the common case, cheaply: a known client, an origin-form target and forward
        mode off; `admit` then would return the scope unchanged."""
        if self.forward:
            return True
        raw = scope.get("raw_path")
        if raw and raw[0] != 47:  # not "/": an absolute-form target
            return True
        client = scope.get("client")
        return client is not None and client[0] not in self.admitted

    def admits_known(self, client: tuple[str, int] | None) -> bool:
        """True when an origin-form request from `client` needs no check: forward mode off and
        the client already admitted (the first request of a new client address goes through
        `needs_check` and `admit`)."""
        return not self.forward and (client is None or client[0] in self.admitted)

    def admit(self, scope: Scope) -> Scope | OutpostError:
        """The scope to serve (an absolute-form target becomes its path), or why not."""
        client = scope.get("client")
        if client is not None and client[0] not in self.admitted:
            refusal = self._check_client(client[0])
            if refusal is not None:
                return refusal
        raw: bytes | None = scope.get("raw_path")
        if raw and raw[0] != 47:
            return self._absolute(scope, raw)
        if self.forward:
            for name, host in scope["headers"]:
                if name == b"host":  # HTTP/1.0 without Host: addressed to whoever answers
                    if host in self._hosts:
                        refusal = self._hosts[host]
                    else:
                        refusal = self._check_host(host)
                        remember(self._hosts, host, refusal, MEMO_LIMIT)
                    if refusal is not None:
                        return refusal
                    break
        return scope

    def _check_client(self, address: object) -> OutpostError | None:
        refusal = self._refused.get(address)
        if refusal is not None:
            return refusal
        if self.networks.allows(str(address)):
            if len(self.admitted) >= MEMO_LIMIT:
                self.admitted.clear()
            self.admitted.add(address)
            return None
        refusal = Forbidden(
            f"client {address} is not in this proxy's client networks", accepted=_CLIENT_SETTING
        )
        remember(self._refused, address, refusal, MEMO_LIMIT)
        return refusal

    def _absolute(self, scope: Scope, raw: bytes) -> Scope | OutpostError:
        target = raw.decode("latin-1")
        split = split_absolute_target(target)
        if split is None:
            return BadRequest(
                f"request target {target[:200]!r} is not an http(s) URL this proxy accepts",
                accepted="http://host[:port]/path, without user information",
            )
        authority, path = split
        refusal = self._check(authority)
        if refusal is not None:
            return refusal
        if path.startswith("/_outpost/"):
            return Forbidden(
                "admin routes answer only requests addressed to this proxy, not forward-proxy "
                f"requests for {authority}",
                accepted=f"GET {path} to this proxy's own URL",
            )
        return {**scope, "path": unquote(path), "raw_path": path.encode("latin-1")}

    def _check_host(self, host: bytes) -> OutpostError | None:
        authority = parse_authority(host.decode("latin-1"))
        if authority is None:
            return Forbidden(
                f"Host {host[:200].decode('latin-1')!r} names no destination this proxy allows",
                accepted=self._accepted(),
            )
        return self._check(authority)

    def _check(self, authority: Authority) -> OutpostError | None:
        if not self.forward:
            return Forbidden(
                f"forward-proxy request for {authority}: forward mode is off on this proxy",
                accepted=self._accepted(),
            )
        if self.destinations.allows(authority) or names_proxy(authority, self.names, self.ports):
            return None
        return Forbidden(
            f"destination {authority} is not allowed by this proxy", accepted=self._accepted()
        )

    def _accepted(self) -> dict[str, object]:
        return {
            "setting": "proxy.forward_destinations",
            "variable": "OUTPOST_PROXY_FORWARD_DESTINATIONS",
            "destinations": [str(p) for p in self.destinations.patterns],
        }
