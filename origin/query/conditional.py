"""Validators and conditional requests (RFC 9110 §8.8, §13).

ETags of JSON answers are derived from the canonical URL and the version (the newest change
time of every row the answer depends on), not from the body, so a conditional GET is answered
without building the body. The gzip variant's tag carries a `-gz` suffix; both variants hold
the same content, so If-None-Match matches either.
"""

from __future__ import annotations

import hashlib
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime

__all__ = [
    "content_etag",
    "gzip_etag",
    "http_date",
    "is_not_modified",
    "matched_etag",
    "version_etag",
]

FORMAT_VERSION = "1"  # bump when the JSON encoding of answers changes


def version_etag(canonical_url: str, version: int) -> str:
    digest = hashlib.blake2b(
        f"{FORMAT_VERSION}|{canonical_url}|{version}".encode(), digest_size=16
    ).hexdigest()
    return f'"{digest}"'


def content_etag(body: bytes) -> str:
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def gzip_etag(etag: str) -> str:
    return etag[:-1] + '-gz"'


def http_date(micros: int) -> str:
    return formatdate(micros // 1_000_000, usegmt=True)


def _opaque(tag: str) -> str:
    tag = tag.strip()
    tag = tag.removeprefix("W/")
    return tag.removesuffix('-gz"') + '"' if tag.endswith('-gz"') else tag


def is_not_modified(
    if_none_match: str | None,
    if_modified_since: str | None,
    etag: str,
    last_modified_micros: int | None,
) -> bool:
    """Whether a GET/HEAD with these conditions is answered 304 (RFC 9110 §13.2.2)."""
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return True
        wanted = _opaque(etag)
        return any(_opaque(tag) == wanted for tag in if_none_match.split(",") if tag.strip())
    if if_modified_since is not None and last_modified_micros is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError, IndexError):
            return False  # an invalid date is ignored (RFC 9110 §13.1.3)
        if since.tzinfo is None:  # asctime dates carry no zone and are UTC (RFC 9110 §5.6.7)
            since = since.replace(tzinfo=UTC)
        return last_modified_micros // 1_000_000 <= int(since.timestamp())
    return False


def matched_etag(if_none_match: str | None, etag: str) -> str:
    """The variant's tag a 304 carries: the client's own tag if it matched, else `etag`.

    A cache that revalidates its gzip variant gets that variant's tag back, so it keeps the
    representation it holds.
    """
    wanted = _opaque(etag)
    for tag in (if_none_match or "").split(","):
        tag = tag.strip().removeprefix("W/")
        if tag and _opaque(tag) == wanted:
            return tag
    return etag
