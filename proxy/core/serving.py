"""What a proxy sends for a stored entry, prepared once when the entry is stored.

A hit then only adds what changes with time: `Age`, the ttl in `Cache-Status`, the epoch.
Upstreams' `Via` and `Cache-Status` values are kept and ours appended (RFC 9110 §7.6.3,
RFC 9211: the cache nearest the client comes last).
"""

from __future__ import annotations

from dataclasses import replace

from proxy.core.entry import SECOND, Entry, Serving
from proxy.core.epochs import EPOCH_HEADER
from proxy.core.headers import get_all
from proxy.core.status import chain

__all__ = ["hit_headers", "prepare"]

_REPLACED = frozenset({b"cache-status", b"content-length", b"via", EPOCH_HEADER})


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
    memo[:] = [age, epoch, headers]
    return headers
