"""Payload URLs (`/v1/payloads/{sha256}`): their bytes are their name, so the proxy checks them.

A payload answer is stored for a year and survives every flush (`immutable`), so it is only
stored once it is proven:

- a 2xx must be a 200 whose bytes, after undoing any content coding, hash to the name; anything
  else (a wrong hash, a coding the proxy cannot undo, a 203 or a 206) is an integrity failure:
  the upstream is skipped as if it had failed, and the next one asked;
- any other answer (a 404 while a payload is being uploaded, a redirect) is a negative answer:
  stored at most `negative_ttl` seconds and never immutable, so a flush clears it too.
"""

from __future__ import annotations

import hashlib
import re
import zlib

from proxy.core.entry import response_cache_control
from proxy.core.headers import Headers, get_all

__all__ = ["PAYLOAD_PREFIX", "negative_headers", "payload_hash", "payload_problem"]

PAYLOAD_PREFIX = "/v1/payloads/"
_HASH = re.compile(r"[0-9a-f]{64}")
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
# what could give a negative answer another lifetime than ours (RFC 9213's targeted fields too)
_DROPPED = frozenset(
    {b"cache-control", b"expires", b"pragma", b"outpost-cache-control", b"cdn-cache-control"}
)


def payload_hash(key: str) -> str | None:
    """The hash a cache key names, when it is a payload's canonical URL."""
    if not key.startswith(PAYLOAD_PREFIX):
        return None
    digest = key.removeprefix(PAYLOAD_PREFIX)
    return digest if _HASH.fullmatch(digest) else None


def payload_problem(
    expected: str, status: int, headers: Headers, body: bytes, *, limit: int
) -> str | None:
    """Why an upstream's answer for the payload `expected` is not to be trusted, or None: a
    2xx must be a 200 whose decoded bytes (at most `limit` of them) hash to `expected`."""
    if not 200 <= status < 300:
        return None  # negative: `negative_headers` keeps it short-lived
    if status != 200:
        return f"payload answered with status {status}: only a 200 carries its bytes"
    decoded = _decoded(headers, body, limit=limit)
    if isinstance(decoded, str):
        return decoded
    return digest_problem(expected, hashlib.sha256(decoded).hexdigest())


def digest_problem(expected: str, actual: str) -> str | None:
    """Why a payload whose bytes hash to `actual` is not the payload `expected`, or None."""
    return None if actual == expected else f"payload body hashes to {actual}, not {expected}"


def uncoded(headers: Headers) -> bool:
    """Whether an answer's body is its bytes as they are (no content coding to undo first):
    such a body can be hashed as it arrives."""
    return all(
        token.strip().lower() in (b"", b"identity")
        for value in get_all(headers, b"content-encoding")
        for token in value.split(b",")
    )


def negative_headers(headers: Headers, negative_ttl: int) -> list[tuple[bytes, bytes]]:
    """A negative payload answer's fields as the proxy stores and relays them: freshness capped
    at `negative_ttl` seconds, never immutable (an upstream may not pin a 404 for a year)."""
    cc = response_cache_control(headers)
    if cc.no_store or cc.private:
        return list(headers)  # never stored anyway
    declared = cc.s_maxage if cc.s_maxage is not None else cc.max_age
    ttl = negative_ttl if declared is None else min(declared, negative_ttl)
    kept = [(k, v) for k, v in headers if k not in _DROPPED]
    return [*kept, (b"cache-control", b"public, max-age=%d" % ttl)]


def _decoded(headers: Headers, body: bytes, *, limit: int) -> bytes | str:
    """`body` with its content codings undone (last applied first), or why not."""
    codings = [
        token.strip().lower()
        for value in get_all(headers, b"content-encoding")
        for token in value.decode("latin-1").split(",")
        if token.strip()
    ]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        wbits = _CODINGS.get(coding)
        if wbits is None:
            return f"payload sent with content coding {coding[:40]!r}, which the proxy cannot check"
        inflater = zlib.decompressobj(wbits)
        try:
            body = inflater.decompress(body, limit)
        except zlib.error as exc:
            return f"payload's {coding} coding is corrupt: {exc}"
        if inflater.unconsumed_tail or not inflater.eof:
            return f"payload's {coding} coding is truncated or expands past {limit} bytes"
    return body
