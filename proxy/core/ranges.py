"""Range requests answered from a stored representation (RFC 9110 §14), pure: no I/O.

    Range        = ranges-specifier = range-unit "=" range-set
    range-set    = 1#range-spec      range-spec = int-range / suffix-range / other-range
    int-range    = first-pos "-" [ last-pos ]     suffix-range = "-" suffix-length

Only a single byte range is answered 206; anything else gets the whole 200, which the RFC
allows throughout (§14.2: "A server MAY ignore the Range header field"): another unit, a
syntactically invalid value, and several ranges (no multipart/byteranges). A value over
`MAX_RANGE_BYTES` or with more than `MAX_RANGES` members is not parsed at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxy.core.dates import SECOND, parse_http_date
from proxy.core.headers import Headers
from proxy.core.validators import strong_match

__all__ = [
    "MAX_RANGES",
    "MAX_RANGE_BYTES",
    "Partial",
    "RangeAnswer",
    "Unsatisfiable",
    "Whole",
    "if_range_holds",
    "parse_range",
    "partial_headers",
    "unsatisfiable_headers",
]

MAX_RANGE_BYTES = 1024
MAX_RANGES = 32
_SPEC = re.compile(rb"([0-9]*)-([0-9]*)")


@dataclass(frozen=True, slots=True)
class Whole:
    """Ignore the Range: answer 200 with the whole representation."""


@dataclass(frozen=True, slots=True)
class Partial:
    """Answer 206 with bytes `first` to `last`, inclusive (`last` < the length)."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """Answer 416 (§15.5.17)."""


RangeAnswer = Whole | Partial | Unsatisfiable


def parse_range(value: bytes, length: int) -> RangeAnswer:
    """What to answer a Range `value` for a representation of `length` bytes.

    A single int-range is satisfiable when "the first-pos is less than the current length of
    the selected representation" (§14.1.1) and its last-pos is clamped to the length; a
    suffix-range is satisfiable when it "has a non-zero suffix-length" and covers the whole
    representation when longer. A range covering the whole representation is still a 206.
    A non-zero suffix of an empty representation gets the whole (empty) 200: satisfiable, but
    no byte range can say so.
    """
    if len(value) > MAX_RANGE_BYTES or value.count(b",") >= MAX_RANGES:
        return Whole()
    unit, eq, range_set = value.strip(b" \t").partition(b"=")
    if not eq or unit.lower() != b"bytes":  # range units compare case-insensitively (§14.1)
        return Whole()
    specs = [spec.strip(b" \t") for spec in range_set.split(b",")]
    specs = [spec for spec in specs if spec]  # empty list members are tolerated (§5.6.1)
    if len(specs) != 1:
        return Whole()
    found = _SPEC.fullmatch(specs[0])
    if found is None:
        return Whole()
    first_text, last_text = found.groups()
    if not first_text:  # suffix-range
        if not last_text:
            return Whole()  # "-": neither a first-pos nor a suffix-length
        suffix = _number(last_text)
        if suffix == 0:
            return Unsatisfiable()
        if length == 0:
            return Whole()
        return Partial(max(0, length - suffix), length - 1)
    first = _number(first_text)
    last = _number(last_text) if last_text else None
    if last is not None and last < first:
        return Whole()  # §14.1.1: "An int-range is invalid if the last-pos value is ... less"
    if first >= length:
        return Unsatisfiable()
    return Partial(first, length - 1 if last is None else min(last, length - 1))


def _number(digits: bytes) -> int:
    """A non-negative integer of any size; one longer than 18 digits is past any length."""
    significant = digits.lstrip(b"0")
    return int(significant or b"0") if len(significant) <= 18 else 10**18


def if_range_holds(
    if_range: bytes | None, etag: bytes | None, last_modified: bytes | None, date: bytes | None
) -> bool:
    """Whether an If-Range condition lets the Range apply to the stored representation with
    these validators (§13.1.5); true without If-Range.

    An entity-tag must match "using the strong comparison function", so a weak one never
    does. A date must be a strong validator and exactly match: "If the HTTP-date validator
    provided is not a strong validator in the sense defined by Section 8.8.2.2, the condition
    is false"; for a cache, §8.8.2.2 makes Last-Modified strong when "that cache entry includes
    a Date value, which is at least one second after the Last-Modified value". "Exactly
    matches the Last-Modified field value" is taken as byte for byte (after trimming white
    space), and both must be valid HTTP-dates.
    """
    if if_range is None:
        return True
    if_range = if_range.strip(b" \t")
    if if_range.startswith((b'"', b"W/")):
        return etag is not None and strong_match(if_range, etag)
    if last_modified is None or if_range != last_modified.strip(b" \t"):
        return False
    modified = parse_http_date(last_modified)
    dated = parse_http_date(date)
    return modified is not None and dated is not None and dated - modified >= SECOND


def partial_headers(
    headers: Headers, first: int, last: int, length: int
) -> list[tuple[bytes, bytes]]:
    """The fields of a 206 for bytes `first`-`last` of `length` (§14.4): `headers` without any
    Content-Range, plus ours. Content-Length is the caller's (it knows the body it sends)."""
    kept = [(key, value) for key, value in headers if key != b"content-range"]
    return [*kept, (b"content-range", b"bytes %d-%d/%d" % (first, last, length))]


def unsatisfiable_headers(length: int) -> list[tuple[bytes, bytes]]:
    """The Content-Range of a 416 (§14.4: "bytes */" complete-length)."""
    return [(b"content-range", b"bytes */%d" % length)]
