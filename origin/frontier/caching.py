"""Caching headers of Frontier answers: TTL class → max-age, stale-if-error, validators, 304.

As the servlet: `ttl=short|long|forever` (per payload; the default is long, and the last short or
forever wins) chooses `Cache-Control: max-age`; a request carrying `Cache-Control: max-stale=N`
(frontier_client always sends `max-stale=1`) gets `stale-if-error=N` back; errors are cached for
`min(300 s, short)` with `Last-Modified` at the epoch, so any real answer replaces them.

Validators. The version of an answer is the newest write time (µs, the database's write clock)
of every table its statements read. Last-Modified has whole seconds, and a write may commit up
to `settle` seconds after it took its time stamp, so a version is only offered as a validator
once its second, plus `settle`, is over: from then on every write not yet visible carries a later
second, so an unchanged Last-Modified (or ETag) really means unchanged data. A 304 is given, as
the servlet does, only when If-Modified-Since is exactly the Last-Modified we would send now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime

from origin.query.conditional import is_not_modified, version_etag
from origin.query.ttl import FOREVER_SECONDS, TTLClass, TTLPolicy

__all__ = [
    "ERROR_MAX_AGE",
    "MAX_STALE_IF_ERROR",
    "EPOCH",
    "Validators",
    "cache_control",
    "error_max_age",
    "max_age",
    "not_modified",
    "ttl_of",
    "validators",
]

ERROR_MAX_AGE = 300  # the servlet's errorDefaultMaxAge
MAX_STALE_IF_ERROR = 86_400  # a day: what `outpost proxy` allows by default (stale_if_error)
EPOCH = formatdate(0, usegmt=True)  # Last-Modified of errors: never matches a real answer
SECOND = 1_000_000


def ttl_of(values: Sequence[str | None]) -> TTLClass:
    """The TTL class of a request from its payloads' `ttl` parameters."""
    chosen = TTLClass.LONG
    for value in values:
        if value == "short":
            chosen = TTLClass.SHORT
        elif value == "forever":
            chosen = TTLClass.FOREVER
    return chosen


def max_age(ttl: TTLClass, policy: TTLPolicy) -> int:
    return {
        TTLClass.SHORT: policy.short_seconds,
        TTLClass.LONG: policy.long_seconds,
        TTLClass.FOREVER: FOREVER_SECONDS,
    }[ttl]


def error_max_age(policy: TTLPolicy) -> int:
    """How long an answer with a payload error may be cached."""
    return min(ERROR_MAX_AGE, policy.short_seconds)


def cache_control(age: int, request_cache_control: str | None) -> str:
    """`max-age=N`, plus `stale-if-error=M` when the request says `max-stale=M`, at most
    MAX_STALE_IF_ERROR: the answer is shared, so one request's directive may not pin it."""
    stale = _max_stale(request_cache_control)
    return f"max-age={age}" if stale is None else f"max-age={age}, stale-if-error={stale}"


def _max_stale(header: str | None) -> int | None:
    for directive in (header or "").split(","):
        name, _, value = directive.strip().partition("=")
        value = value.strip().strip('"')
        if name.strip().lower() == "max-stale" and value.isascii() and value.isdigit():
            return min(int(value[:12]), MAX_STALE_IF_ERROR)
    return None


@dataclass(frozen=True)
class Validators:
    last_modified: str
    etag: str


def validators(
    version: int | None, *, now: int, settle_seconds: int, canonical: str
) -> Validators | None:
    """The answer's validators, or None while its version may still be joined by a write."""
    if version is None or version <= 0:
        return None
    second = version // SECOND
    if now - settle_seconds * SECOND < (second + 1) * SECOND:
        return None
    return Validators(formatdate(second, usegmt=True), version_etag(canonical, version))


def not_modified(
    found: Validators, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """Whether the client's copy is current: its ETag matches, or its date is our Last-Modified."""
    if if_none_match is not None:
        return is_not_modified(if_none_match, None, found.etag, None)
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
        ours = parsedate_to_datetime(found.last_modified)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:  # an asctime date is UTC (RFC 9110 §5.6.7)
        since = since.replace(tzinfo=UTC)
    return since == ours
