"""Access-log lines: one per request, in the layouts squid's and Frontier's tools read, or JSON.

    squid     squid's native `access.log` (`logformat squid`):
              1796587200.123      0 10.0.0.7 TCP_MEM_HIT/200 1536 GET /v1/payloads/ab…
                  - HIER_NONE/- application/octet-stream
    frontier  frontier-squid's layout, which `decodesquidlog` and awstats read:
              10.0.0.7 - - [06/Dec/2026:20:00:00.123 +0000] "GET /Frontier/type=… HTTP/1.1"
                  200 1536 TCP_MEM_HIT:HIER_NONE 0 "CMSSW_14 12345 user" "-"
    json      one JSON object a line, every field of `Access`

(each one line; wrapped here)

The squid result code comes from this cache's Cache-Status entry (`squid_result`): a hit
answered below ASGI (from memory) is TCP_MEM_HIT, another hit TCP_HIT, a request answered by another
request's fetch TCP_CF_HIT (squid's collapsed forwarding), a revalidation TCP_REFRESH_*, a stored
answer served because every upstream failed TCP_REFRESH_FAIL_OLD, a refused request TCP_DENIED,
the proxy's own routes NONE. The target is written as the client sent it (percent-encoded as it
came, so `grep type=frontier_request` finds Frontier requests); a byte that could break the line
(a control character, a space, a quote) is written `%XX`, so a request can never forge a line.

Pure: no I/O. `outpost.accesslog` keeps the records and writes the lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final

import orjson

__all__ = [
    "DASH",
    "FORMATS",
    "Access",
    "clean",
    "escape_target",
    "frontier_line",
    "json_line",
    "squid_line",
    "squid_result",
]

DASH: Final = "-"
_UNSAFE: Final = frozenset(range(0x21)) | {0x22, 0x5C, 0x7F}  # controls, space, '"', '\'
_UNQUOTABLE: Final = _UNSAFE - {0x20}  # inside a quoted field a space is fine


@dataclass(frozen=True, slots=True)
class Access:
    """One request as the log tells it."""

    time: float  # Unix seconds when the answer was sent
    duration: float  # seconds from the request's head to the answer
    client: str  # address
    method: str
    target: str  # as received, `escape_target`ed
    status: int
    bytes: int  # body bytes sent
    result: str  # squid's result code (`squid_result`)
    cache_status: str  # this cache's Cache-Status entry ("" at the origin)
    upstream: str  # the upstream that answered, redacted ("-": none asked)
    attempts: int  # upstream attempts it took (0: none)
    frontier_id: str  # the request's X-Frontier-Id ("-": none)
    if_modified_since: str  # the request's If-Modified-Since ("-": none)
    content_type: str  # the answer's ("-": none)


def escape_target(raw: bytes, limit: int = 8192, unsafe: frozenset[int] = _UNSAFE) -> str:
    """A request target fit for one log field: bytes that could break the line are `%XX`."""
    raw = raw[:limit]
    if not any(b in unsafe or b > 0x7E for b in raw):
        return raw.decode("ascii")
    return "".join(chr(b) if b not in unsafe and b <= 0x7E else f"%{b:02X}" for b in raw)


def clean(value: str, limit: int = 512) -> str:
    """A header value fit for a quoted log field (spaces kept), or `-` if absent."""
    if not value:
        return DASH
    return escape_target(value.encode("latin-1", "replace"), limit, _UNQUOTABLE)


def squid_result(cache_status: str, status: int) -> str:
    """Squid's result code for this cache's Cache-Status entry (`name; hit; ttl=4`, …)."""
    if not cache_status:
        return "NONE"  # not answered by the cache: its own routes
    params = dict(p.strip().partition("=")[::2] for p in cache_status.split(";")[1:])
    detail = params.get("detail", "")
    if detail == "refused":
        return "TCP_DENIED"
    if detail == "stale-if-error":
        return "TCP_REFRESH_FAIL_OLD"
    if "collapsed" in params:
        return "TCP_CF_HIT"
    if "hit" in params:
        return "TCP_HIT"  # memory or the shared tier (the hit path below ASGI: TCP_MEM_HIT)
    fwd = params.get("fwd")
    if fwd == "stale":
        if params.get("fwd-status") == "304":
            return "TCP_REFRESH_UNMODIFIED"
        return "TCP_REFRESH_MODIFIED"
    if fwd:
        return "TCP_MISS"
    return "NONE"


def hierarchy(access: Access) -> str:
    """Squid's hierarchy code: where the answer came from."""
    if access.upstream == DASH:
        return "HIER_NONE"
    return "FIRSTUP_PARENT" if access.attempts <= 1 else "ANY_OLD_PARENT"


def squid_line(access: Access) -> str:
    """`%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`"""
    host = _host(access.upstream)
    return (
        f"{access.time:.3f} {round(access.duration * 1000):6d} {access.client} "
        f"{access.result}/{access.status:03d} {access.bytes} {access.method} {access.target} "
        f"- {hierarchy(access)}/{host} {access.content_type}"
    )


def frontier_line(access: Access) -> str:
    """frontier-squid's: `%>a %ui %un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh %tr
    "%{X-Frontier-Id}>h" "%{If-Modified-Since}>h"`"""
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime(access.time))
    millis = int(access.time * 1000) % 1000
    return (
        f'{access.client} - - [{stamp}.{millis:03d} +0000] "{access.method} {access.target} '
        f'HTTP/1.1" {access.status} {access.bytes} {access.result}:{hierarchy(access)} '
        f'{round(access.duration * 1000)} "{access.frontier_id}" "{access.if_modified_since}"'
    )


def json_line(access: Access) -> str:
    return orjson.dumps(asdict(access)).decode()


def _host(upstream: str) -> str:
    if upstream == DASH:
        return DASH
    return upstream.split("://", 1)[-1].split("/", 1)[0] or DASH


FORMATS: Final[dict[str, Callable[[Access], str]]] = {
    "squid": squid_line,
    "frontier": frontier_line,
    "json": json_line,
}
