"""The Age field (RFC 9111 §5.1): how long ago, in seconds, the response was generated or
validated at the origin, as the caches in between estimated it.

    Age = delta-seconds

Age is a singleton field, but field lines may repeat (the first counts) and a sender may write
a list. §5.1: "a cache encountering a message with a list-based Age field value SHOULD use the
first member of the field value, discarding subsequent ones. If the field value (after
discarding subsequent members, as per above) is invalid (e.g., it contains something other
than a non-negative integer), a cache SHOULD ignore the field." Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_AGE_SECONDS", "parse_age"]

MAX_AGE_SECONDS = 2**31  # RFC 9111 §1.2.2: treat larger delta-seconds as this


def parse_age(values: Sequence[bytes]) -> int | None:
    """The Age in seconds from the field lines `values` (in order), capped at 2**31; None when
    absent or invalid (`10a`, `10;q=1`, `-1`, `1.5`, empty): the cache ignores it."""
    if not values:
        return None
    first = values[0].split(b",", 1)[0].strip(b" \t")
    if not (first.isdigit() and first.isascii()):  # bytes.isdigit is ASCII-only already
        return None
    significant = first.lstrip(b"0")
    if len(significant) > 10:  # beyond 2**31 anyway; int() refuses over 4300 digits
        return MAX_AGE_SECONDS
    return min(int(significant or b"0"), MAX_AGE_SECONDS)
