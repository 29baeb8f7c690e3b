"""Client networks (frontier-squid's NET_LOCAL): which client addresses may use the cache.

The default admits what a laptop and a farm use: loopback, the RFC 1918 private ranges, IPv6
loopback and unique-local addresses. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a
dual-stack socket reports for an IPv4 client) is checked as the IPv4 address it carries.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["DEFAULT_CLIENT_NETWORKS", "ClientNetworks"]

DEFAULT_CLIENT_NETWORKS = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientNetworks:
    """A list of networks; `allows(address)` says whether a client address is in one of them."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        networks: list[Network] = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"{cidr!r} is not a network: expected a CIDR such as 10.0.0.0/8 or fc00::/7"
                ) from None
        self.networks = tuple(networks)
        self._v4 = tuple(n for n in networks if isinstance(n, ipaddress.IPv4Network))
        self._v6 = tuple(n for n in networks if isinstance(n, ipaddress.IPv6Network))

    def allows(self, address: str) -> bool:
        """Whether `address` (an IP literal, as ASGI servers report clients) is admitted."""
        try:
            ip = ipaddress.ip_address(address.strip().removeprefix("[").removesuffix("]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            else:
                plain = ipaddress.IPv6Address(ip.packed)  # without a %zone
                return any(plain in network for network in self._v6)
        return any(ip in network for network in self._v4)

    def __str__(self) -> str:
        return ", ".join(str(n) for n in self.networks)
