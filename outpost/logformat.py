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

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import orjson

__all__ = [
    "DASH",
    "FORMATS",
    "MEMO_BYTES",
    "Access",
    "clean",
    "escape_target",
    "frontier_line",
    "frontier_template",
    "frontier_time",
    "json_line",
    "squid_line",
    "squid_start",
    "squid_template",
    "squid_result",
]

DASH: Final = "-"
_UNSAFE: Final = re.compile(rb'[\x00-\x20"\\\x7f-\xff]')  # controls, space, '"', '\', not ASCII
MEMO_LIMIT: Final = 10_000  # targets remembered, escaped
MEMO_BYTES: Final = 1024  # longer targets (a client's to choose) are escaped, not remembered
_escaped: dict[bytes, str] = {}
_UNQUOTABLE: Final = re.compile(rb'[\x00-\x1f"\\\x7f-\xff]')  # in a quoted field a space is fine


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


def escape_target(raw: bytes, limit: int = 8192, unsafe: re.Pattern[bytes] | None = None) -> str:
    """A request target fit for one log field: bytes that could break the line are `%XX`.
    Memoised for targets (a storm asks for the same few URLs over and over)."""
    if unsafe is None and len(raw) <= MEMO_BYTES:  # memory: at most 10 000 of 1 KiB
        known = _escaped.get(raw)
        if known is None:
            if len(_escaped) >= MEMO_LIMIT:
                _escaped.clear()
            known = _escaped[raw] = _escape(raw, limit, _UNSAFE)
        return known
    return _escape(raw, limit, unsafe or _UNSAFE)


def _escape(raw: bytes, limit: int, unsafe: re.Pattern[bytes]) -> str:
    raw = raw[:limit]
    if unsafe.search(raw) is None:  # the usual case, in C
        return raw.decode("ascii")
    return unsafe.sub(_percent, raw).decode("ascii")


def clean(value: str, limit: int = 512) -> str:
    """A header value fit for a quoted log field (spaces kept), or `-` if absent."""
    if not value:
        return DASH
    return escape_target(value.encode("latin-1", "replace"), limit, _UNQUOTABLE)


def _percent(found: re.Match[bytes]) -> bytes:
    return b"%%%02X" % found.group()[0]


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


# Each layout is written once, as a template of the fields that repeat (a storm asks for the
# same URLs again and again) around the two that change with every request, the time and the
# elapsed milliseconds: the hit path keeps templates and fills in only those two.


def squid_line(access: Access) -> str:
    hier = f"{hierarchy(access)}/{_host(access.upstream)}"
    rest = squid_template(
        access.client,
        access.result,
        access.status,
        access.bytes,
        access.method,
        access.target,
        hier,
        access.content_type,
    )
    return squid_start(access.time, access.duration) + rest


def squid_start(at: float, duration: float) -> str:
    """`%ts.%03tu %6tr `: the time and the elapsed milliseconds."""
    return "%.3f %6d " % (at, int(duration * 1000))  # noqa: UP031 (the fastest formatting)


def squid_template(
    client: str,
    result: str,
    status: int,
    size: int,
    method: str,
    target: str,
    hier: str,
    content_type: str,
) -> str:
    """The rest of squid's native line: `%>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt` (a
    space in the content type, `; charset=…`, is written `%20`: every field stays one)."""
    return "%s %s/%03d %d %s %s - %s %s" % (  # noqa: UP031
        client,
        result,
        status,
        size,
        method,
        target,
        hier,
        content_type.replace(" ", "%20"),
    )


def frontier_line(access: Access) -> str:
    start, middle, end = frontier_template(
        access.client,
        access.method,
        access.target,
        access.status,
        access.bytes,
        f"{access.result}:{hierarchy(access)}",
        access.frontier_id,
        access.if_modified_since,
    )
    return start + frontier_time(access.time) + middle + str(int(access.duration * 1000)) + end


def frontier_time(at: float) -> str:
    """`%tl` as frontier-squid writes it, to the millisecond."""
    return _millisecond(int(at * 1000))


@lru_cache(maxsize=8)
def _millisecond(millis: int) -> str:
    """Made once a millisecond: a busy cache writes dozens of lines in each."""
    return "%s.%03d" % (_stamp(millis // 1000), millis % 1000)  # noqa: UP031


def frontier_template(
    client: str,
    method: str,
    target: str,
    status: int,
    size: int,
    result: str,
    frontier_id: str,
    if_modified_since: str,
) -> tuple[str, str, str]:
    """frontier-squid's line, `%>a %ui %un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh %tr
    "%{X-Frontier-Id}>h" "%{If-Modified-Since}>h"` (`result` is `%Ss:%Sh`), in the three
    pieces around `%tl` and `%tr`. No field holds a control character (they are escaped)."""
    line = '%s - - [\x00 +0000] "%s %s HTTP/1.1" %d %d %s \x01 "%s" "%s"' % (  # noqa: UP031
        client,
        method,
        target,
        status,
        size,
        result,
        frontier_id,
        if_modified_since,
    )
    start, _, rest = line.partition("\x00")
    middle, _, end = rest.partition("\x01")
    return start, middle, end


def json_line(access: Access) -> str:
    return orjson.dumps(access).decode()  # orjson writes dataclasses itself, fast


@lru_cache(maxsize=4)
def _stamp(second: int) -> str:
    """frontier-squid's time of day, formatted once a second, not once a line."""
    return time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime(second))


def _host(upstream: str) -> str:
    if upstream == DASH:
        return DASH
    return upstream.split("://", 1)[-1].split("/", 1)[0] or DASH


FORMATS: Final[dict[str, Callable[[Access], str]]] = {
    "squid": squid_line,
    "frontier": frontier_line,
    "json": json_line,
}
