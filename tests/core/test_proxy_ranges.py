"""Range requests (RFC 9110 §14): one byte range is answered 206, anything else the whole 200,
a valid range past the end 416; If-Range (§13.1.5) with strong validators only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.ranges import (
    MAX_RANGE_BYTES,
    MAX_RANGES,
    Partial,
    Unsatisfiable,
    Whole,
    if_range_holds,
    parse_range,
    partial_headers,
    unsatisfiable_headers,
)

LENGTH = 1000
MODIFIED = b"Sun, 06 Nov 1994 08:49:37 GMT"
SECOND_LATER = b"Sun, 06 Nov 1994 08:49:38 GMT"


def answer(value: str, length: int = LENGTH) -> object:
    return parse_range(value.encode(), length)


# --- parse_range -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "first", "last"),
    [
        ("bytes=0-499", 0, 499),
        ("bytes=500-999", 500, 999),
        ("bytes=0-0", 0, 0),
        ("bytes=999-999", 999, 999),
    ],
)
def test_a_closed_range_is_partial(value: str, first: int, last: int) -> None:
    assert answer(value) == Partial(first, last)


def test_an_open_range_runs_to_the_end() -> None:
    assert answer("bytes=100-") == Partial(100, 999)


def test_a_last_pos_past_the_end_is_clamped() -> None:
    assert answer("bytes=900-5000") == Partial(900, 999)


def test_a_suffix_range_is_the_last_bytes() -> None:
    assert answer("bytes=-500") == Partial(500, 999)


def test_a_suffix_longer_than_the_representation_is_all_of_it() -> None:
    assert answer("bytes=-5000") == Partial(0, 999)


def test_a_range_covering_everything_is_still_partial() -> None:
    assert answer("bytes=0-999") == Partial(0, 999)
    assert answer("bytes=0-") == Partial(0, 999)


@pytest.mark.parametrize(
    "value", ["BYTES=0-1", "Bytes=0-1", " bytes=0-1 ", "bytes= 0-1 ", "bytes=0-1,"]
)
def test_unit_case_and_surrounding_white_space_do_not_matter(value: str) -> None:
    assert answer(value) == Partial(0, 1)


@pytest.mark.parametrize("value", ["bytes=1000-", "bytes=1000-2000", "bytes=5000-6000"])
def test_a_first_pos_at_or_past_the_end_is_unsatisfiable(value: str) -> None:
    assert answer(value) == Unsatisfiable()


def test_a_suffix_of_zero_is_unsatisfiable() -> None:
    assert answer("bytes=-0") == Unsatisfiable()
    assert answer("bytes=-000") == Unsatisfiable()


def test_any_int_range_of_an_empty_representation_is_unsatisfiable() -> None:
    assert answer("bytes=0-", 0) == Unsatisfiable()
    assert answer("bytes=0-0", 0) == Unsatisfiable()


def test_a_suffix_of_an_empty_representation_gets_the_whole() -> None:
    assert answer("bytes=-5", 0) == Whole()


def test_several_ranges_get_the_whole() -> None:
    assert answer("bytes=0-1,5-6") == Whole()
    assert answer("bytes=0-1, -5") == Whole()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=a-b",
        "bytes=1-a",
        "bytes=0x1-2",
        "bytes=+1-2",
        "bytes=1 - 2",
        "bytes=1.5-2",
        "bytes=5-4",
        "bytes=--1",
        "bytes=1-2-3",
        "bytes 0-1",
        "items=0-1",
        "bytes=\xb2-3",
    ],
)
def test_an_invalid_or_foreign_range_gets_the_whole(value: str) -> None:
    assert parse_range(value.encode("latin-1"), LENGTH) == Whole()


def test_a_value_over_the_byte_bound_is_not_parsed() -> None:
    at_bound = b"bytes=" + b"0" * (MAX_RANGE_BYTES - 9) + b"1-2"
    assert len(at_bound) == MAX_RANGE_BYTES
    assert parse_range(at_bound, LENGTH) == Partial(1, 2)
    assert parse_range(at_bound.replace(b"=", b"=0"), LENGTH) == Whole()


def test_a_value_with_too_many_members_is_not_parsed() -> None:
    value = b"bytes=0-1" + b"," * MAX_RANGES
    assert parse_range(value, LENGTH) == Whole()
    assert parse_range(b"bytes=0-1" + b"," * (MAX_RANGES - 1), LENGTH) == Partial(0, 1)


def test_huge_positions_are_past_the_end() -> None:
    assert answer("bytes=" + "9" * 5000 + "-") == Whole()  # over the byte bound
    assert answer("bytes=" + "9" * 500 + "-") == Unsatisfiable()
    assert answer("bytes=0-" + "9" * 500) == Partial(0, 999)
    assert answer("bytes=-" + "9" * 500) == Partial(0, 999)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6))
def test_a_partial_answer_is_always_inside_the_representation(
    first: int, last: int, length: int
) -> None:
    for value in (f"bytes={first}-{last}", f"bytes={first}-", f"bytes=-{last}"):
        result = answer(value, length)
        if isinstance(result, Partial):
            assert 0 <= result.first <= result.last < length


@given(st.integers(0, 10**6), st.integers(1, 10**6))
def test_an_open_range_is_partial_exactly_when_it_starts_inside(first: int, length: int) -> None:
    expected = Partial(first, length - 1) if first < length else Unsatisfiable()
    assert answer(f"bytes={first}-", length) == expected


@given(st.binary(max_size=64), st.integers(0, 10**6))
def test_arbitrary_values_never_fail(value: bytes, length: int) -> None:
    assert isinstance(parse_range(value, length), Whole | Partial | Unsatisfiable)


# --- If-Range ----------------------------------------------------------------------------


def test_without_if_range_the_range_applies() -> None:
    assert if_range_holds(None, b'"v1"', MODIFIED, SECOND_LATER)


def test_a_strong_etag_that_matches_holds() -> None:
    assert if_range_holds(b'"v1"', b'"v1"', None, None)
    assert if_range_holds(b' "v1" ', b'"v1"', None, None)


def test_a_different_etag_does_not_hold() -> None:
    assert not if_range_holds(b'"v2"', b'"v1"', None, None)


@pytest.mark.parametrize(
    ("sent", "stored"), [(b'W/"v1"', b'"v1"'), (b'"v1"', b'W/"v1"'), (b'W/"v1"', b'W/"v1"')]
)
def test_a_weak_etag_never_holds(sent: bytes, stored: bytes) -> None:
    assert not if_range_holds(sent, stored, None, None)


def test_an_etag_without_a_stored_etag_does_not_hold() -> None:
    assert not if_range_holds(b'"v1"', None, MODIFIED, SECOND_LATER)


def test_a_malformed_stored_etag_does_not_hold() -> None:
    assert not if_range_holds(b'"v1"', b"v1", None, None)


def test_a_date_equal_to_a_strong_last_modified_holds() -> None:
    assert if_range_holds(MODIFIED, None, MODIFIED, SECOND_LATER)


def test_a_date_equal_to_a_weak_last_modified_does_not_hold() -> None:
    # RFC 9110 §8.8.2.2: strong only when Date is at least one second after Last-Modified.
    assert not if_range_holds(MODIFIED, None, MODIFIED, MODIFIED)


def test_a_date_without_a_stored_date_does_not_hold() -> None:
    assert not if_range_holds(MODIFIED, None, MODIFIED, None)


def test_a_date_must_match_exactly() -> None:
    later = b"Sun, 06 Nov 1994 08:49:40 GMT"
    assert not if_range_holds(later, None, MODIFIED, b"Mon, 07 Nov 1994 00:00:00 GMT")
    assert not if_range_holds(b"Sunday, 06-Nov-94 08:49:37 GMT", None, MODIFIED, SECOND_LATER)


def test_a_date_without_a_stored_last_modified_does_not_hold() -> None:
    assert not if_range_holds(MODIFIED, b'"v1"', None, SECOND_LATER)


def test_an_invalid_date_does_not_hold_even_if_equal() -> None:
    assert not if_range_holds(b"yesterday", None, b"yesterday", SECOND_LATER)


# --- fields ------------------------------------------------------------------------------


def test_partial_headers_add_content_range_and_replace_any_old_one() -> None:
    headers = [(b"etag", b'"v1"'), (b"content-range", b"bytes 0-1/2"), (b"content-length", b"9")]
    assert partial_headers(headers, 100, 199, 1000) == [
        (b"etag", b'"v1"'),
        (b"content-length", b"9"),
        (b"content-range", b"bytes 100-199/1000"),
    ]


def test_unsatisfiable_headers_give_the_complete_length() -> None:
    assert unsatisfiable_headers(1000) == [(b"content-range", b"bytes */1000")]
