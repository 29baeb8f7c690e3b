"""The Age field (RFC 9111 §5.1): the first member of the first line, delta-seconds or
ignored, capped at 2**31."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.age import MAX_AGE_SECONDS, parse_age


def test_an_absent_age_is_none() -> None:
    assert parse_age([]) is None


@pytest.mark.parametrize(("value", "seconds"), [(b"0", 0), (b"10", 10), (b"007", 7)])
def test_delta_seconds_is_read(value: bytes, seconds: int) -> None:
    assert parse_age([value]) == seconds


def test_surrounding_white_space_is_discarded() -> None:
    assert parse_age([b" \t10 "]) == 10


def test_a_list_value_takes_its_first_member() -> None:
    assert parse_age([b"10, 20"]) == 10
    assert parse_age([b"10,x"]) == 10


def test_several_lines_take_the_first() -> None:
    assert parse_age([b"10", b"20"]) == 10


def test_an_invalid_first_line_is_not_replaced_by_a_later_one() -> None:
    assert parse_age([b"soon", b"20"]) is None


def test_an_invalid_first_member_is_not_replaced_by_a_later_one() -> None:
    assert parse_age([b"x, 20"]) is None


@pytest.mark.parametrize(
    "value",
    [b"10a", b"10;q=1", b"-1", b"1.5", b"", b" ", b"+5", b"1e3", b"1 0", b"\xb2", "٣".encode()],
)
def test_anything_but_delta_seconds_is_ignored(value: bytes) -> None:
    assert parse_age([value]) is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"2147483647", 2**31 - 1),
        (b"2147483648", MAX_AGE_SECONDS),
        (b"99999999999999999999", MAX_AGE_SECONDS),
        (b"9" * 5000, MAX_AGE_SECONDS),
        (b"0" * 5000 + b"3", 3),
    ],
)
def test_huge_ages_are_capped_at_2_to_the_31(value: bytes, seconds: int) -> None:
    assert parse_age([value]) == seconds


@given(st.integers(0, 10**40))
def test_any_non_negative_integer_is_read_capped(seconds: int) -> None:
    assert parse_age([b"%d" % seconds]) == min(seconds, MAX_AGE_SECONDS)


@given(st.lists(st.binary(max_size=20), max_size=3))
def test_the_result_is_none_or_within_bounds(values: list[bytes]) -> None:
    age = parse_age(values)
    assert age is None or 0 <= age <= MAX_AGE_SECONDS
