"""What one client connection may cost a server: request-head bytes and fields, the time to
send a head, and how many connections a process keeps open (no I/O here but the rlimit calls).

A client that streams a huge header, sends half a head and waits, or opens connections and
says nothing, used to hold memory or a file descriptor for as long as it liked: 1100 idle
connections took a proxy with `ulimit -n 1024` off the network. `ConnectionLimits` is what
`outpost.connections.LimitedProtocol` enforces, built from a program's settings
(`limits_from`); `connection_cap` keeps the cap under the file-descriptor limit, and
`raise_nofile` lifts that limit as far as the hard limit allows before a server starts.
"""

from __future__ import annotations

import http
import resource
from dataclasses import dataclass
from typing import Protocol

from outpost.errors import OutpostError

__all__ = [
    "ConnectionLimits",
    "LimitSettings",
    "connection_cap",
    "error_answer",
    "limits_from",
    "raise_nofile",
    "raised_nofile",
]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection limits of one server process (defaults: the settings' defaults)."""

    max_header_bytes: int = 128 * 1024  # request line + header fields
    max_header_count: int = 100
    header_timeout: float = 60.0  # connection start or first byte of a request -> head complete
    max_connections: int = 4096  # open client connections of this process
    max_lingering: int = 64  # refused connections drained before closing (half the reserve)


class LimitSettings(Protocol):
    """The fields `[origin]` and `[proxy]` share for these limits."""

    @property
    def max_header_bytes(self) -> int: ...
    @property
    def max_header_count(self) -> int: ...
    @property
    def header_timeout_seconds(self) -> float: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def fd_reserve(self) -> int: ...


def connection_cap(max_connections: int, nofile: int, reserve: int) -> int:
    """At most `max_connections`, and `reserve` descriptors under the process's limit `nofile`
    (kept for upstream connections, Redis, files and logs), but never below one."""
    return max(1, min(max_connections, nofile - reserve))


def raised_nofile(soft: int, hard: int) -> int:
    """The soft RLIMIT_NOFILE to ask for: the hard limit, unless that is unlimited (the kernel
    refuses an unlimited soft limit), or lower than what we have."""
    if hard == resource.RLIM_INFINITY:
        return soft
    return max(soft, hard)


def raise_nofile() -> int:
    """Lift the soft RLIMIT_NOFILE to `raised_nofile`; the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = raised_nofile(soft, hard)
    if wanted != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft
    return wanted


def limits_from(settings: LimitSettings, nofile: int | None = None) -> ConnectionLimits:
    """The limits a server process enforces; `nofile` defaults to the current soft limit."""
    if nofile is None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
        header_timeout=settings.header_timeout_seconds,
        max_connections=connection_cap(settings.max_connections, nofile, settings.fd_reserve),
        max_lingering=settings.fd_reserve // 2,
    )


def error_answer(error: OutpostError, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A whole HTTP/1.1 answer carrying `error`'s JSON body that closes the connection: what a
    server writes when it refuses a connection or a head before any app sees a request."""
    body = error.body()
    phrase = http.HTTPStatus(error.status).phrase
    lines = [f"HTTP/1.1 {error.status} {phrase}".encode()]
    lines += [name + b": " + value for name, value in extra or ()]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in error.headers.items()]
    lines += [
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        b"cache-control: no-store",
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
