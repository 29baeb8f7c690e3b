"""What a proxy sends for a stored entry, prepared once when the entry is stored.

A hit then only adds what changes with time: `Age`, the ttl in `Cache-Status`, the epoch.
Upstreams' `Via` and `Cache-Status` values are kept and ours appended (RFC 9110 §7.6.3,
RFC 9211: the cache nearest the client comes last). `hit_head` gives the same headers as the
bytes of an HTTP/1.1 response head, for the hit path that writes to the socket itself.
"""

from __future__ import annotations

from dataclasses import replace
from http import HTTPStatus

from proxy.core.entry import SECOND, Entry, Serving
from proxy.core.epochs import EPOCH_HEADER
from proxy.core.headers import get_all
from proxy.core.status import chain
from proxy.core.targeted import OUTPOST_CACHE_CONTROL

__all__ = ["entry_headers", "hit_head", "hit_headers", "prepare", "response_head"]

# Outpost-Cache-Control is for Outpost tiers only: `proxy.responses` adds it back for them.
_REPLACED = frozenset(
    {b"cache-status", b"content-length", b"via", EPOCH_HEADER, OUTPOST_CACHE_CONTROL}
)


def prepare(entry: Entry, name: str) -> Entry:
    """`entry` with its `serving` headers filled in for the proxy called `name`."""
    via = b", ".join([*get_all(entry.headers, b"via"), f"1.1 {name}".encode()])
    prefix = (
        *((k, v) for k, v in entry.headers if k not in _REPLACED),
        (b"via", via),
        (b"content-length", b"%d" % len(entry.body)),
    )
    upstream = b", ".join(get_all(entry.headers, b"cache-status")) or None
    serving = Serving(prefix, upstream, chain(upstream, f"{name}; hit; ttl=".encode()))
    return replace(entry, serving=serving)


def hit_headers(entry: Entry, now: int, epoch: int) -> list[tuple[bytes, bytes]]:
    """Headers of a plain hit at `now`, from an entry that went through `prepare`."""
    serving = entry.serving
    assert serving is not None, "hit_headers needs an entry that went through prepare()"
    age = (entry.initial_age + max(0, now - entry.response_time)) // SECOND
    memo = serving.memo
    if memo[0] == age and memo[1] == epoch:
        return memo[2]  # type: ignore[return-value]
    headers = [
        *serving.prefix,
        (b"age", b"%d" % age),
        (b"cache-status", serving.hit_status + b"%d" % (entry.freshness // SECOND - age)),
        (EPOCH_HEADER, b"%d" % epoch),
    ]
    memo[:] = [age, epoch, headers, None]
    return headers


def entry_headers(
    entry: Entry, now: int, status: bytes, name: str, epoch: int
) -> list[tuple[bytes, bytes]]:
    """Headers for a stored entry served with our Cache-Status entry `status` (a hit's is
    `hit_headers`'): its own, Via, Content-Length, Age, Cache-Status, epoch."""
    if entry.serving is None:
        entry = prepare(entry, name)
    assert entry.serving is not None
    return [
        *entry.serving.prefix,
        (b"age", b"%d" % (entry.age(now) // SECOND)),
        (b"cache-status", chain(entry.serving.upstream_status, status)),
        (EPOCH_HEADER, b"%d" % epoch),
    ]


def hit_head(entry: Entry, now: int, epoch: int) -> bytes:
    """`HTTP/1.1 <status>`, the headers of `hit_headers` and the blank line, as bytes: what a
    keep-alive HTTP/1.1 client is sent before the body of a plain hit."""
    headers = hit_headers(entry, now, epoch)
    memo = entry.serving.memo  # type: ignore[union-attr]  # hit_headers asserted it
    if memo[3] is None:
        memo[3] = response_head(entry.status, headers)
    return memo[3]  # type: ignore[return-value]


def response_head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The status line, `headers` and the blank line of an HTTP/1.1 response, as bytes."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, _reason(status))]
    lines += [b"%s: %s\r\n" % header for header in headers]
    lines.append(b"\r\n")
    return b"".join(lines)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:  # a status code without a registered phrase
        return b""
