"""Which stored URLs an unsafe request's answer invalidates (RFC 9111 §4.4).

A 2xx or 3xx answer to an unsafe method invalidates its target URI, and the URIs in its
`Location` and `Content-Location` fields, but only those on the same host as the target: "a
cache MUST NOT invalidate a URI from a Location or Content-Location response field if the host
part of that URI differs from the host part in the target URI" (it could let one origin evict
another's answers). Pure: keys in, keys out.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from outpost.errors import BadRequest
from proxy.core.headers import Headers, get_all
from proxy.core.keys import primary_key

__all__ = ["invalidates", "invalidated_keys"]

MAX_LOCATION_BYTES = 2048


def invalidates(status: int) -> bool:
    """Whether an unsafe method's answer with `status` invalidates (§4.4: non-error)."""
    return 200 <= status < 400


def invalidated_keys(key: str, host: bytes | None, response_headers: Headers) -> list[str]:
    """The cache keys an unsafe request on `key` (its primary key, an origin-form target)
    invalidates, given the request's Host and its answer's fields: `key` first."""
    keys = [key]
    base = f"http://{(host or b'').decode('latin-1').lower()}{key}"
    own_host = urlsplit(base).netloc
    for name in (b"location", b"content-location"):
        for value in get_all(response_headers, name)[:1]:
            if len(value) > MAX_LOCATION_BYTES:
                continue
            try:
                target = urlsplit(urljoin(base, value.decode("latin-1").strip()))
            except ValueError:  # a malformed URI names nothing
                continue
            if target.scheme not in ("http", "https") or target.netloc.lower() != own_host:
                continue
            try:
                other = primary_key(target.path or "/", target.query)
            except BadRequest:
                continue
            if other not in keys:
                keys.append(other)
    return keys
