"""Cache keys: Outpost's own reads key on their canonical URL, so parameter order or number
spelling never splits the cache; Frontier URLs (`/{servlet}/Frontier/…`, `…/Frontier?…`) on
their exact path and query bytes (see `proxy.core.frontier`); anything else on its path and
query as received.

A response's `Vary` adds the request's values of the named fields to the key. Accept-Encoding
is normalised to `gzip` or `identity` (what the origin can actually choose between), so the
many spellings clients send share two variants instead of one per spelling.
"""

from __future__ import annotations

from functools import lru_cache

from outpost.coding import accepts_gzip
from outpost.errors import OutpostError
from outpost.urls import canonical
from proxy.core.frontier import frontier_key
from proxy.core.headers import Headers, get_all

__all__ = ["primary_key", "variant_key"]


def primary_key(path: str, query_string: str, raw_path: str | None = None) -> str:
    """The key of a request for `path` (decoded) and `query_string`; `raw_path` is the path
    as received, percent-escapes and all (ASGI's `raw_path`), when known."""
    if path.startswith("/v1/"):
        try:
            return canonical(path, query_string)
        except OutpostError:
            pass  # not a well-formed read: the upstream will say so; key it as sent
    frontier = frontier_key(path if raw_path is None else raw_path, query_string)
    if frontier is not None:
        return frontier
    return f"{path}?{query_string}" if query_string else path


def variant_key(primary: str, vary: tuple[bytes, ...], request_headers: Headers) -> str:
    """The key of the variant of `primary` selected by the request's `vary` fields."""
    if not vary:
        return primary
    parts = [primary]
    for name in vary:
        values = get_all(request_headers, name)
        if name == b"accept-encoding":
            parts.append(_coding(b",".join(values)))
        else:
            parts.append(b",".join(v.strip() for v in values).decode("latin-1"))
    return "\x1f".join(parts)


@lru_cache(maxsize=1024)
def _coding(accept_encoding: bytes) -> str:
    """`gzip` or `identity` for an Accept-Encoding value, memoised: a farm's nodes all send the
    same value, and the hit path looks up a varied answer's variant on every request."""
    return "gzip" if accepts_gzip(accept_encoding.decode("latin-1")) else "identity"
