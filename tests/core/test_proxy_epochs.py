"""Epochs: a flush moves the proxy's epoch forward, a child adopts a newer one from its parent,
and the `Outpost-Epoch` value is read strictly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.epochs import (
    EPOCH_CEILING,
    EPOCH_HEADER,
    EpochOutOfRange,
    adopt,
    next_epoch,
    parse_epoch,
)


def test_the_epoch_header_name_is_lower_case() -> None:
    assert EPOCH_HEADER == b"outpost-epoch"


def test_a_flush_moves_past_the_current_epoch() -> None:
    assert next_epoch(0) == 1
    assert next_epoch(5) == 6


@pytest.mark.parametrize(("requested", "expected"), [(9, 9), (7, 7), (6, 6), (5, 6), (3, 6)])
def test_a_flush_sets_at_least_the_requested_epoch_and_always_moves_forward(
    requested: int, expected: int
) -> None:
    assert next_epoch(5, requested) == expected


def test_a_requested_epoch_of_zero_still_moves_forward() -> None:
    assert next_epoch(0, 0) == 1


def test_a_newer_epoch_from_upstream_is_adopted() -> None:
    assert adopt(5, 8) == 8


@pytest.mark.parametrize("seen", [None, 0, 4, 5])
def test_adopting_never_goes_backwards(seen: int | None) -> None:
    assert adopt(5, seen) == 5


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"0", 0), (b"42", 42), (b" 42 ", 42), (b"007", 7), (b"9" * 18, int("9" * 18))],
)
def test_an_epoch_is_a_plain_decimal(value: bytes, expected: int) -> None:
    assert parse_epoch(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"  ",
        b"abc",
        b"-1",
        b"+1",
        b"1.5",
        b"1e3",
        b"0x10",
        b"1 2",
        b"\xd9\xa1",  # ARABIC-INDIC DIGIT ONE in UTF-8
        b"\xb2",  # latin-1 superscript two
        b"9" * 19,
        b"1" + b"0" * 30,
    ],
)
def test_junk_negative_and_huge_epochs_are_rejected(value: bytes | None) -> None:
    assert parse_epoch(value) is None


def test_every_accepted_epoch_fits_a_signed_64_bit_integer() -> None:
    largest = parse_epoch(b"9" * 18)
    assert largest is not None
    assert largest < 2**63


@given(st.integers(0, EPOCH_CEILING), st.integers(0, 2**63 - 1), st.integers(1, 10**9))
def test_a_flush_never_moves_the_epoch_by_more_than_the_step(
    current: int, requested: int, step: int
) -> None:
    try:
        epoch = next_epoch(current, requested, step)
    except EpochOutOfRange:
        assert max(current + 1, requested) > min(current + step, EPOCH_CEILING)
        return
    assert current < epoch <= min(current + step, EPOCH_CEILING)


@given(st.integers(0, EPOCH_CEILING), st.integers(0, 2**63 - 1), st.integers(1, 10**9))
def test_adopting_never_jumps_by_more_than_the_step(current: int, seen: int, step: int) -> None:
    adopted = adopt(current, seen, step)
    assert adopted in (current, seen)
    assert current <= adopted <= max(current, min(current + step, EPOCH_CEILING))


def test_the_int64_maximum_is_refused_and_ignored() -> None:
    with pytest.raises(EpochOutOfRange, match="at most 1000005"):
        next_epoch(5, 9223372036854775807)
    assert adopt(5, 9223372036854775807) == 5
    assert adopt(5, 1_000_005) == 1_000_005  # the default step: a far-behind child catches up
