"""Conditional requests from clients, answered from a stored entry (RFC 9110 §13.1 to 13.2), and
the entity-tag comparisons (RFC 9110 §8.8.3.2) that If-Range also uses.

    entity-tag = [ weak ] opaque-tag        weak = %s"W/"   (case-sensitive)
    opaque-tag = DQUOTE *etagc DQUOTE       etagc = %x21 / %x23-7E / obs-text

Anything else is not an entity-tag and matches nothing, on either side: an unquoted tag a
client sends, an unquoted ETag an upstream stored. Pure: no I/O.
"""

from __future__ import annotations

import re
from functools import lru_cache

from proxy.core.dates import parse_http_date
from proxy.core.entry import Entry
from proxy.core.headers import Headers, get_first

__all__ = [
    "head_matches",
    "not_modified",
    "parse_entity_tags",
    "strong_match",
    "weak_match",
]

_OWS = b" \t"
_TAG = re.compile(rb'(W/)?("[\x21\x23-\x7e\x80-\xff]*")')
# A list of entity-tags (RFC 9110 §5.6.1: empty members tolerated), for If-None-Match.
_TAG_LIST = re.compile(rb'[ \t,]*(?:(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"[ \t]*(?:,[ \t,]*|\Z))*')
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def _parse(tag: bytes) -> tuple[bool, bytes] | None:
    """(weak, opaque-tag) of an entity-tag, or None if it is not one."""
    found = _TAG.fullmatch(tag.strip(_OWS))
    if found is None:
        return None
    return found.group(1) is not None, found.group(2)


def strong_match(a: bytes, b: bytes) -> bool:
    """RFC 9110 §8.8.3.2: "two entity tags are equivalent if both are not weak and their
    opaque-tags match character-by-character"."""
    ours, theirs = _parse(a), _parse(b)
    return ours is not None and theirs is not None and not ours[0] and ours == theirs


def weak_match(a: bytes, b: bytes) -> bool:
    """RFC 9110 §8.8.3.2: "two entity tags are equivalent if their opaque-tags match
    character-by-character, regardless of either or both being tagged as weak"."""
    ours, theirs = _parse(a), _parse(b)
    return ours is not None and theirs is not None and ours[1] == theirs[1]


@lru_cache(maxsize=1024)
def parse_entity_tags(value: bytes) -> tuple[bytes, ...] | None:
    """The entity-tags of an If-None-Match (or If-Match) value in order, `(b"*",)` for `*`;
    None for a malformed list, which matches nothing. Memoised: clients revalidate the same
    few tags again and again."""
    value = value.strip(_OWS)
    if value == b"*":
        return (b"*",)
    if not value or _TAG_LIST.fullmatch(value) is None:
        return None
    return tuple(found.group(0) for found in _TAG.finditer(value))


def not_modified(
    entry: Entry,
    if_none_match: bytes | None,
    if_modified_since: bytes | None,
    *,
    method: str = "GET",
) -> bool:
    """Whether a request with these conditions gets 304 from `entry` (RFC 9110 §13.2.2).

    If-None-Match compares weakly (§13.1.2: "A recipient MUST use the weak comparison function
    when comparing entity tags for If-None-Match"); a malformed list matches nothing. Only a
    GET or HEAD is answered 304 (§13.1.2: other methods get 412, which is not ours to send).
    If-Modified-Since counts only without If-None-Match, and only against a valid
    Last-Modified (§13.1.3: "A recipient MUST ignore the If-Modified-Since header field if the
    received field value is not a valid HTTP-date ... or if the request method is neither GET
    nor HEAD")."""
    if entry.status != 200 or method not in _SAFE_METHODS:
        return False
    if if_none_match is not None:
        tags = parse_entity_tags(if_none_match)
        if tags is None:
            return False
        if tags == (b"*",):
            return True
        if entry.etag is None:
            return False
        return any(weak_match(tag, entry.etag) for tag in tags)
    if if_modified_since is not None and entry.last_modified is not None:
        since = parse_http_date(if_modified_since)
        modified = parse_http_date(entry.last_modified)
        return since is not None and modified is not None and modified <= since
    return False


def head_matches(entry: Entry, head_headers: Headers) -> bool:
    """Whether a HEAD's 200 describes the stored GET answer `entry` (RFC 9111 §4.3.5): the
    validators it carries (ETag, Last-Modified; at least one) equal the stored ones, and its
    Content-Length, if any, is the stored body's length."""
    etag = get_first(head_headers, b"etag")
    last_modified = get_first(head_headers, b"last-modified")
    if etag is None and last_modified is None:
        return False  # nothing to tell the stored answer from a new one
    if etag is not None and (entry.etag is None or not strong_or_weak_equal(etag, entry.etag)):
        return False
    if last_modified is not None and last_modified.strip() != (entry.last_modified or b"").strip():
        return False
    length = get_first(head_headers, b"content-length")
    return length is None or length.strip() == b"%d" % len(entry.body)


def strong_or_weak_equal(a: bytes, b: bytes) -> bool:
    """The same entity-tag, weakness included (the stored and the new value of one field)."""
    return _parse(a) is not None and _parse(a) == _parse(b)
