"""HTTP-date (RFC 9110 §5.6.7) read strictly, and what an invalid one means to the cache
(RFC 9111 §5.3): `proxy.core.dates.parse_http_date`, `proxy.core.entry.freshness_lifetime`."""

from __future__ import annotations

from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.dates import SECOND, parse_http_date
from proxy.core.directives import CacheControl
from proxy.core.entry import freshness_lifetime

MOMENT = 784_111_777 * SECOND  # Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example
DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


@pytest.mark.parametrize(
    "text",
    [
        b"Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        b"Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850 format
        b"Sun Nov  6 08:49:37 1994",  # obsolete asctime format
        b"Sun Nov 06 08:49:37 1994",
        b"  Sun, 06 Nov 1994 08:49:37 GMT\t",  # optional white space around a field value
    ],
)
def test_rfc9110_5_6_7_the_three_formats_name_one_moment(text: bytes) -> None:
    assert parse_http_date(text, now_year=2026) == MOMENT


@given(st.integers(0, 253_402_300_799))  # 1970 .. 9999
def test_rfc9110_5_6_7_every_imf_fixdate_reads_back_as_written(seconds: int) -> None:
    assert parse_http_date(formatdate(seconds, usegmt=True).encode()) == seconds * SECOND


@pytest.mark.parametrize(
    "text",
    [
        b"Sun, 06 Nov 1994 08:49:37 UTC",  # another zone's name
        b"Sun, 06 Nov 1994 08:49:37 +0000",
        b"Sun, 06 Nov 1994 08:49:37 gmt",  # GMT is case-sensitive
        b"Sun, 06 Nov 94 08:49:37 GMT",  # a two-digit year outside the RFC 850 format
        b"06 Nov 1994 08:49:37 GMT",  # no weekday
        b"Sun, 6 Nov 1994 08:49:37 GMT",  # one-digit day
        b"Sun, 06 November 1994 08:49:37 GMT",
        b"Sun, 06 Nov 1994 08:49 GMT",
        b"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",  # two values
        b"Sun, 31 Feb 1994 08:49:37 GMT",  # no such day
        b"Sun, 06 Nov 1994 25:49:37 GMT",
        b"Sun, 06 Nov 1994 08:61:37 GMT",
        b"Sunday, 06-Nov-1994 08:49:37 GMT",
        b"Sun Nov  6 08:49:37 94",
        b"1994-11-06T08:49:37Z",
        b"784111777",
        b"0",
        b"-1",
        "Sun, 06 Nov 1994 08:49:37 GMT\u00a0".encode(),
        b"\xff\xfe",
        b"",
    ],
)
def test_rfc9110_5_6_7_anything_else_is_not_a_date(text: bytes) -> None:
    assert parse_http_date(text) is None


def test_rfc9110_5_6_7_a_two_digit_year_more_than_50_years_ahead_is_in_the_past() -> None:
    assert parse_http_date(b"Monday, 01-Jan-76 00:00:00 GMT", now_year=2026) == (
        parse_http_date(b"Thu, 01 Jan 2076 00:00:00 GMT")
    )
    assert parse_http_date(b"Tuesday, 01-Jan-77 00:00:00 GMT", now_year=2026) == (
        parse_http_date(b"Sat, 01 Jan 1977 00:00:00 GMT")
    )


def test_rfc9110_5_6_7_a_leap_second_is_read_as_the_second_before_it() -> None:
    assert parse_http_date(b"Sat, 31 Dec 2016 23:59:60 GMT") == (
        parse_http_date(b"Sat, 31 Dec 2016 23:59:59 GMT")
    )


def lifetime(*expires: bytes) -> int:
    headers = [(b"date", DATE), *((b"expires", value) for value in expires)]
    return freshness_lifetime(200, CacheControl(), headers)


def test_rfc9111_5_3_a_valid_expires_gives_its_distance_from_date() -> None:
    assert lifetime(b"Sun, 06 Nov 1994 09:49:37 GMT") == 3600 * SECOND
    assert lifetime(b"Sun, 06 Nov 1994 07:49:37 GMT") == 0  # in the past: already stale


@pytest.mark.parametrize(
    "expires",
    [
        (b"Sun, 06 Nov 1994 09:49:37 UTC",),
        (b"Sun, 06 Nov 94 09:49:37 GMT",),
        (b"0",),
        (b"never",),
        (b"Sun, 06 Nov 1994 09:49:37 GMT", b"Sun, 06 Nov 1994 10:49:37 GMT"),  # several
    ],
    ids=["UTC", "two-digit year", "zero", "a word", "two field lines"],
)
def test_rfc9111_5_3_an_invalid_or_repeated_expires_means_already_expired(
    expires: tuple[bytes, ...],
) -> None:
    assert lifetime(*expires) == 0
