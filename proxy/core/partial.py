"""Stored partial answers (RFC 9111 §3.3, §3.4), pure: a 206 kept, reused for the ranges it
holds, and combined with a new 206 of the same representation.

The proxy fetches a range request's whole answer and answers the range from it, so partial
answers reach it only for objects over `max_object_bytes`, which it never stores whole; their
parts are kept when they are small enough. A part is kept only when its Content-Range is one
satisfied range of a known complete length and it carries a strong entity-tag: parts are
combined only "if the stored response and the new response both have the same strong
validator" (§3.4), and a weak one cannot promise that the bytes line up. One part per URL: a new
part of the same representation that overlaps or touches the stored one is merged with it (the
new bytes and header fields win where they differ, as §3.4 has the new response's fields used);
any other new part replaces it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxy.core.headers import Headers, get_all, get_first
from proxy.core.ranges import Partial
from proxy.core.validators import strong_match

__all__ = ["ContentRange", "combine", "content_range", "holds", "part_of", "with_range"]

_CONTENT_RANGE = re.compile(rb"bytes ([0-9]{1,18})-([0-9]{1,18})/([0-9]{1,18})")


@dataclass(frozen=True, slots=True)
class ContentRange:
    """`bytes first-last/length`: the part's bytes `first` to `last` (inclusive) of `length`."""

    first: int
    last: int
    length: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


def content_range(headers: Headers, body_size: int) -> ContentRange | None:
    """The single satisfied range a 206 says it carries, or None when it is anything else
    (several ranges, an unknown length, a range past the end, a body of another size)."""
    values = get_all(headers, b"content-range")
    if len(values) != 1:
        return None
    found = _CONTENT_RANGE.fullmatch(values[0].strip())
    if found is None:
        return None
    first, last, length = (int(group) for group in found.groups())
    if not first <= last < length or last - first + 1 != body_size:
        return None
    return ContentRange(first, last, length)


def holds(part: ContentRange, wanted: Partial) -> bool:
    """Whether the stored part has every byte of the range a request asks for."""
    return part.first <= wanted.first and wanted.last <= part.last


def part_of(part: ContentRange, body: bytes, wanted: Partial) -> bytes:
    """The bytes of `wanted` out of a part that `holds` them."""
    return body[wanted.first - part.first : wanted.last - part.first + 1]


def combine(
    stored: ContentRange,
    stored_headers: Headers,
    stored_body: bytes,
    new: ContentRange,
    new_headers: Headers,
    new_body: bytes,
) -> tuple[ContentRange, bytes] | None:
    """The part made of a stored part and a new one, or None when they may not be combined:
    another representation (lengths or strong entity-tags differ) or a gap between them."""
    ours, theirs = get_first(stored_headers, b"etag"), get_first(new_headers, b"etag")
    if ours is None or theirs is None or not strong_match(ours, theirs):
        return None
    if stored.length != new.length:
        return None
    if new.first > stored.last + 1 or stored.first > new.last + 1:
        return None  # a gap between them
    first, last = min(stored.first, new.first), max(stored.last, new.last)
    merged = bytearray(last - first + 1)
    merged[stored.first - first : stored.last - first + 1] = stored_body
    merged[new.first - first : new.last - first + 1] = new_body  # the newer bytes win
    return ContentRange(first, last, stored.length), bytes(merged)


def with_range(headers: Headers, part: ContentRange) -> list[tuple[bytes, bytes]]:
    """`headers` with their Content-Range (and Content-Length) for `part`."""
    kept = [(k, v) for k, v in headers if k not in (b"content-range", b"content-length")]
    value = b"bytes %d-%d/%d" % (part.first, part.last, part.length)
    return [*kept, (b"content-range", value), (b"content-length", b"%d" % part.size)]
