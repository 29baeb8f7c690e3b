"""HTTP-date (RFC 9110 §5.6.7), strictly: the three formats the RFC names, and nothing else.

    IMF-fixdate    Sun, 06 Nov 1994 08:49:37 GMT      what every sender must send
    rfc850-date    Sunday, 06-Nov-94 08:49:37 GMT     obsolete; a two-digit year that looks
                                                      more than 50 years ahead is in the past
    asctime-date   Sun Nov  6 08:49:37 1994           obsolete; UTC

Anything else is invalid: another zone (`UTC`, `+0000`), a two-digit year outside rfc850-date,
a missing weekday, extra text. What a cache does with an invalid date is the caller's rule:
an invalid `Expires` means already expired (RFC 9111 §5.3), an invalid `Last-Modified` gives
no heuristic freshness, an invalid `If-Modified-Since` is ignored. (`email.utils`' parser, used
before, took all of these as valid dates.)

Pure: no I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

__all__ = ["parse_http_date"]

SECOND: Final = 1_000_000
_DAY: Final = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY: Final = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_MONTH: Final = "(" + "|".join(_MONTHS) + ")"
_TIME: Final = r"(\d\d):(\d\d):(\d\d)"
_IMF: Final = re.compile(rf"{_DAY}, (\d\d) {_MONTH} (\d{{4}}) {_TIME} GMT")
_RFC850: Final = re.compile(rf"{_LONG_DAY}, (\d\d)-{_MONTH}-(\d\d) {_TIME} GMT")
_ASCTIME: Final = re.compile(rf"{_DAY} {_MONTH} ([ \d]\d) {_TIME} (\d{{4}})")


def parse_http_date(value: bytes | None, now_year: int | None = None) -> int | None:
    """An HTTP-date as µs since the epoch; None if absent or not one of the three formats (or
    not a real moment: 31 Feb, 25:00). `now_year` places an rfc850-date's two-digit year
    (default: this year)."""
    if not value:
        return None
    try:
        text = value.decode("ascii").strip(" \t")
    except UnicodeDecodeError:
        return None
    if found := _IMF.fullmatch(text):
        day, month, year, hour, minute, second = found.groups()
    elif found := _RFC850.fullmatch(text):
        day, month, short, hour, minute, second = found.groups()
        year = str(_full_year(int(short), now_year or datetime.now(UTC).year))
    elif found := _ASCTIME.fullmatch(text):
        month, day, hour, minute, second, year = found.groups()  # day: " 6", "06" or "16"
    else:
        return None
    try:
        moment = datetime(
            int(year),
            _MONTHS.index(month) + 1,
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),  # a leap second is the second before it
            tzinfo=UTC,
        )
    except ValueError:
        return None
    return int(moment.timestamp()) * SECOND


def _full_year(short: int, now_year: int) -> int:
    """RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is the most recent past one
    with those digits."""
    year = now_year - now_year % 100 + short
    return year - 100 if year > now_year + 50 else year
