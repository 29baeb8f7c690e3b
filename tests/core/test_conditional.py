"""Conditional requests and content coding: when a GET is answered 304 (RFC 9110 §13.2.2),
which tag the 304 carries, whether gzip is acceptable, and how version tags are made."""

from __future__ import annotations

import pytest

from origin.query.conditional import (
    content_etag,
    gzip_etag,
    http_date,
    is_not_modified,
    matched_etag,
    version_etag,
)
from outpost.coding import accepts_gzip

URL = "/v1/resolve/GT?run=5"
ETAG = version_etag(URL, 1_777_636_800_000_000)
GZ_ETAG = gzip_etag(ETAG)
OTHER = version_etag(URL, 1_777_636_800_000_001)
MODIFIED = 1_777_636_800_250_000  # 2026-05-01T12:00:00.25Z, in microseconds
AT = "Fri, 01 May 2026 12:00:00 GMT"  # Last-Modified's second
BEFORE = "Fri, 01 May 2026 11:59:59 GMT"
AFTER = "Fri, 01 May 2026 12:00:01 GMT"


def if_none_match(header: str, etag: str = ETAG) -> bool:
    return is_not_modified(header, None, etag, MODIFIED)


def if_modified_since(header: str, last_modified: int | None = MODIFIED) -> bool:
    return is_not_modified(None, header, ETAG, last_modified)


# --- If-None-Match -----------------------------------------------------------------------------


def test_if_none_match_with_the_current_tag_is_not_modified() -> None:
    assert if_none_match(ETAG)


def test_if_none_match_with_another_tag_is_modified() -> None:
    assert not if_none_match(OTHER)
    assert not if_none_match('"something-else"')


@pytest.mark.parametrize(
    "header",
    [f"{OTHER}, {ETAG}", f"{ETAG},{OTHER}", f' "x" ,  {ETAG} ', f"{OTHER},,{ETAG}"],
)
def test_if_none_match_matches_any_tag_in_its_list(header: str) -> None:
    assert if_none_match(header)


def test_if_none_match_with_no_listed_tag_matching_is_modified() -> None:
    assert not if_none_match(f'{OTHER}, "x", W/"y"')


@pytest.mark.parametrize("header", ["*", " * "])
def test_if_none_match_star_matches_any_current_tag(header: str) -> None:
    assert if_none_match(header)
    assert if_none_match(header, etag=OTHER)


def test_if_none_match_compares_weakly() -> None:
    assert if_none_match(f"W/{ETAG}")
    assert if_none_match(f'"x", W/{ETAG}')


@pytest.mark.parametrize(
    ("header", "etag"),
    [(GZ_ETAG, ETAG), (ETAG, GZ_ETAG), (GZ_ETAG, GZ_ETAG), (f"W/{GZ_ETAG}", ETAG)],
)
def test_the_gzip_variant_tag_matches_the_identity_tag_and_back(header: str, etag: str) -> None:
    assert if_none_match(header, etag=etag)


def test_the_gzip_variant_of_another_tag_does_not_match() -> None:
    assert not if_none_match(gzip_etag(OTHER))
    assert not if_none_match(OTHER, etag=GZ_ETAG)


def test_if_none_match_takes_precedence_over_if_modified_since() -> None:
    # RFC 9110 §13.2.2: with If-None-Match present, If-Modified-Since is not evaluated.
    assert not is_not_modified(OTHER, AFTER, ETAG, MODIFIED)
    assert is_not_modified(ETAG, BEFORE, ETAG, MODIFIED)


def test_if_none_match_works_without_a_last_modified_time() -> None:
    assert is_not_modified(ETAG, None, ETAG, None)


# --- If-Modified-Since -------------------------------------------------------------------------


def test_if_modified_since_the_last_modified_second_is_not_modified() -> None:
    assert if_modified_since(AT)


def test_if_modified_since_a_later_time_is_not_modified() -> None:
    assert if_modified_since(AFTER)


def test_if_modified_since_an_earlier_time_is_modified() -> None:
    assert not if_modified_since(BEFORE)


def test_if_modified_since_compares_whole_seconds() -> None:
    # Last-Modified is sent as http_date(MODIFIED), which drops the fraction of a second.
    assert http_date(MODIFIED) == AT
    assert if_modified_since(http_date(MODIFIED))
    assert not if_modified_since(AT, last_modified=MODIFIED + 1_000_000)


@pytest.mark.parametrize(
    "header",
    [
        "Friday, 01-May-26 12:00:00 GMT",  # RFC 850
        "Fri May  1 12:00:00 2026",  # asctime
    ],
)
def test_if_modified_since_accepts_the_obsolete_date_formats(header: str) -> None:
    assert if_modified_since(header)


@pytest.mark.parametrize("header", ["", "yesterday", "Fri, 99 May 2026 12:00:00 GMT", "12", ","])
def test_an_invalid_if_modified_since_is_ignored(header: str) -> None:
    assert not if_modified_since(header)


def test_if_modified_since_without_a_last_modified_time_is_modified() -> None:
    assert not if_modified_since(AFTER, last_modified=None)


def test_no_conditions_means_modified() -> None:
    assert not is_not_modified(None, None, ETAG, MODIFIED)


# --- the tag a 304 carries ---------------------------------------------------------------------


def test_a_304_carries_the_variant_tag_the_client_sent() -> None:
    assert matched_etag(GZ_ETAG, ETAG) == GZ_ETAG
    assert matched_etag(ETAG, GZ_ETAG) == ETAG
    assert matched_etag(f'"x", {GZ_ETAG}', ETAG) == GZ_ETAG


def test_a_304_carries_a_weak_client_tag_as_strong() -> None:
    assert matched_etag(f"W/{GZ_ETAG}", ETAG) == GZ_ETAG


@pytest.mark.parametrize("header", [None, "*", OTHER, ""])
def test_a_304_without_a_matching_client_tag_carries_the_current_tag(header: str | None) -> None:
    assert matched_etag(header, ETAG) == ETAG


# --- Accept-Encoding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "gzip",
        "GZIP",
        "deflate, gzip",
        "gzip;q=0.5",
        "gzip; q=0.001",
        "br;q=1.0, gzip;q=0.8, *;q=0.1",
        "*",
        "identity, *",
        "x-gzip",
        "gzip;q=1, *;q=0",
    ],
)
def test_gzip_is_accepted_with_a_non_zero_quality(header: str) -> None:
    assert accepts_gzip(header)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "identity",
        "br, deflate",
        "gzip;q=0",
        "gzip; q=0.000",
        "gzip;q=0, *",
        "*;q=0",
        "identity, *;q=0",
        "gzip;q=nonsense",
    ],
)
def test_gzip_is_refused_when_absent_or_of_quality_zero(header: str | None) -> None:
    assert not accepts_gzip(header)


# --- tags and dates ----------------------------------------------------------------------------


def test_a_version_tag_is_a_quoted_strong_tag() -> None:
    assert ETAG.startswith('"')
    assert ETAG.endswith('"')
    assert not ETAG.startswith("W/")
    assert '"' not in ETAG[1:-1]


def test_a_version_tag_is_a_function_of_url_and_version() -> None:
    assert version_etag(URL, 7) == version_etag(URL, 7)
    assert version_etag(URL, 7) != version_etag(URL, 8)
    assert version_etag(URL, 7) != version_etag(URL + "&lumi=2", 7)


def test_a_version_tag_does_not_confuse_url_and_version_boundaries() -> None:
    assert version_etag("/v1/tags/T1", 23) != version_etag("/v1/tags/T12", 3)


def test_the_gzip_tag_is_the_identity_tag_with_a_suffix_inside_the_quotes() -> None:
    assert gzip_etag('"abc"') == '"abc-gz"'
    assert gzip_etag(ETAG) != ETAG


def test_a_content_tag_is_a_quoted_function_of_the_body() -> None:
    assert content_etag(b"{}") == content_etag(b"{}")
    assert content_etag(b"{}") != content_etag(b"[]")
    assert content_etag(b"{}").startswith('"')
    assert content_etag(b"{}").endswith('"')


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (999_999, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (MODIFIED, AT),
    ],
)
def test_http_date_is_imf_fixdate_truncated_to_the_second(micros: int, text: str) -> None:
    assert http_date(micros) == text
