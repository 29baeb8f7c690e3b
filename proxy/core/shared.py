"""What a shared fetch sends upstream: built from the cache key, never from one client's request.

A fetch the proxy makes for a cache key answers every request that waits on it and every later
hit, so nothing in it may come from one client beyond what the key (and the variant) says:

- the target is the key itself (`proxy.core.keys.primary_key`);
- of the client's fields only `FORWARDED_FIELDS` go up, cleaned by `shared_value`, and they are
  the only fields a variant can be selected by (`variant_key`); X-Forwarded-Host, Cookie,
  X-Original-URL and the like never reach an upstream through a shared fetch;
- the client's Cache-Control is re-rendered from the parsed directives that ask the tiers above
  to validate (`max-age`, `no-cache`); `max-stale` and anything else stay with the request that
  sent them (a servlet that echoes `max-stale` as `stale-if-error` would store it for everyone);
- Frontier URLs always carry an X-Frontier-Id (the client's, or the proxy's own), so a servlet
  that requires one can never answer the shared fetch with an error about one client's request.
"""

from __future__ import annotations

import re
from functools import lru_cache

from outpost.coding import accepts_gzip
from proxy.core.directives import CacheControl
from proxy.core.headers import Headers, get_all

__all__ = [
    "CODING_REQUESTS",
    "FORWARDED_FIELDS",
    "MAX_FIELD_BYTES",
    "shared_coding",
    "shared_request_headers",
    "shared_value",
]

FORWARDED_FIELDS = frozenset({b"accept", b"accept-encoding", b"accept-language", b"x-frontier-id"})
# Request fields selecting each coding a shared fetch asks for (`shared_coding`): identity, gzip.
CODING_REQUESTS: tuple[list[tuple[bytes, bytes]], ...] = ([], [(b"accept-encoding", b"gzip")])
MAX_FIELD_BYTES = 1024
_VISIBLE = re.compile(rb"[ -~]*")


def shared_value(value: bytes) -> bytes | None:
    """A request field's value as a shared fetch may carry it: trimmed of white space, or None
    when it is empty, too long or holds anything but visible ASCII and spaces (the upstream
    client would refuse it, failing the fetch for every request waiting on it)."""
    value = value.strip(b" \t")
    if not value or len(value) > MAX_FIELD_BYTES or not _VISIBLE.fullmatch(value):
        return None
    return value


@lru_cache(maxsize=1024)
def shared_coding(accept_encoding: bytes) -> str:
    """`gzip` or `identity` (what the origin can choose between) for an Accept-Encoding value,
    memoised: a farm's nodes all send the same value, and the hit path looks up a varied
    answer's variant on every request."""
    return "gzip" if accepts_gzip(accept_encoding.decode("latin-1")) else "identity"


def shared_request_headers(
    headers: Headers, cache_control: CacheControl, *, frontier: bool, own_id: bytes
) -> list[tuple[bytes, bytes]]:
    """The fields of a shared fetch for a request with `headers` and parsed `cache_control`
    (validators and Via are the caller's: they come from its own entry and name)."""
    shared: list[tuple[bytes, bytes]] = []
    for name in (b"accept", b"accept-language"):
        value = shared_value(b",".join(get_all(headers, name)))
        if value is not None:
            shared.append((name, value))
    coding = shared_coding(b",".join(get_all(headers, b"accept-encoding")))
    shared.append((b"accept-encoding", coding.encode()))
    if frontier:
        client_id = shared_value(b",".join(get_all(headers, b"x-frontier-id")))
        shared.append((b"x-frontier-id", client_id or own_id))
    if cache_control.no_cache:  # a reload (the hard refresh): every tier above fetches again
        shared += [(b"cache-control", b"no-cache"), (b"pragma", b"no-cache")]
    elif cache_control.max_age is not None:  # end-to-end validation (max-age=0: the soft refresh)
        shared.append((b"cache-control", b"max-age=%d" % cache_control.max_age))
    return shared
