"""Targeted cache control (RFC 9213): the first targeted field that parses as an RFC 8941
Dictionary gives a response's directives; values of the wrong type are ignored."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.directives import CacheControl
from proxy.core.targeted import TARGETS, strip_outpost_targeted, targeted_cache_control

OUTPOST = b"outpost-cache-control"
CDN = b"cdn-cache-control"
CAP = 2**31


def targeted(*pairs: tuple[bytes, bytes]) -> CacheControl | None:
    return targeted_cache_control(list(pairs))


def test_the_targets_are_outpost_first_then_cdn() -> None:
    assert TARGETS == (OUTPOST, CDN)


def test_without_a_targeted_field_there_is_nothing() -> None:
    assert targeted() is None
    assert targeted((b"cache-control", b"max-age=60")) is None


@pytest.mark.parametrize("name", [OUTPOST, CDN])
def test_a_targeted_field_gives_response_directives(name: bytes) -> None:
    assert targeted((name, b"max-age=60, public")) == CacheControl(max_age=60, public=True)


def test_outpost_cache_control_wins_over_cdn_cache_control() -> None:
    assert targeted((CDN, b"max-age=5"), (OUTPOST, b"max-age=60")) == CacheControl(max_age=60)


def test_the_targets_can_be_chosen() -> None:
    pairs = [(OUTPOST, b"max-age=60"), (CDN, b"max-age=5")]
    assert targeted_cache_control(pairs, (CDN,)) == CacheControl(max_age=5)
    assert targeted_cache_control(pairs, ()) is None


@pytest.mark.parametrize(
    "value",
    [b"", b"   ", b"Max-Age=60", b"max-age=60,", b"max-age=60 60", b'private="a', b"max-age=?"],
)
def test_a_field_that_does_not_parse_is_ignored_and_the_next_target_tried(value: bytes) -> None:
    assert targeted((OUTPOST, value), (CDN, b"max-age=5")) == CacheControl(max_age=5)
    assert targeted((OUTPOST, value)) is None


def test_a_field_with_only_unknown_directives_still_applies() -> None:
    # RFC 9213 §3.1's `CDN-Cache-Control: none`: present, so Cache-Control does not apply.
    assert targeted((OUTPOST, b"none"), (CDN, b"max-age=5")) == CacheControl()


def test_field_lines_are_combined_before_parsing() -> None:
    assert targeted((OUTPOST, b"max-age=60"), (OUTPOST, b"no-store")) == CacheControl(
        max_age=60, no_store=True
    )


def test_one_bad_line_makes_the_whole_field_ignored() -> None:
    assert targeted((OUTPOST, b"max-age=60"), (OUTPOST, b"NO-STORE")) is None


@pytest.mark.parametrize(
    ("directive", "field"),
    [
        ("no-store", "no_store"),
        ("no-cache", "no_cache"),
        ("private", "private"),
        ("public", "public"),
        ("must-revalidate", "must_revalidate"),
        ("proxy-revalidate", "proxy_revalidate"),
        ("immutable", "immutable"),
    ],
)
def test_each_flag_is_a_boolean_true(directive: str, field: str) -> None:
    assert targeted((OUTPOST, directive.encode())) == CacheControl(**{field: True})
    assert targeted((OUTPOST, f"{directive}=?1".encode())) == CacheControl(**{field: True})
    assert targeted((OUTPOST, f"{directive}=?0".encode())) == CacheControl()
    assert targeted((OUTPOST, f"{directive}=1".encode())) == CacheControl()


@pytest.mark.parametrize(
    ("directive", "field"),
    [
        ("max-age", "max_age"),
        ("s-maxage", "s_maxage"),
        ("stale-while-revalidate", "stale_while_revalidate"),
        ("stale-if-error", "stale_if_error"),
    ],
)
def test_each_delta_is_a_non_negative_integer(directive: str, field: str) -> None:
    assert targeted((OUTPOST, f"{directive}=42".encode())) == CacheControl(**{field: 42})
    assert targeted((OUTPOST, f"{directive}=0".encode())) == CacheControl(**{field: 0})


@pytest.mark.parametrize("value", ['"60"', "1.5", "-1", "?1", "tok", ":YWJj:", "(1 2)"])
def test_a_delta_of_the_wrong_type_is_ignored(value: str) -> None:
    # RFC 9213 §2.1: values violating the inferred constraints are not consumed.
    assert targeted((OUTPOST, f"max-age={value}, public".encode())) == CacheControl(public=True)


def test_a_huge_delta_is_capped() -> None:
    assert targeted((OUTPOST, b"max-age=999999999999999")) == CacheControl(max_age=CAP)


def test_the_last_of_repeated_keys_wins() -> None:
    # RFC 8941 §4.2.2: a Dictionary's duplicate key overwrites the earlier value.
    assert targeted((OUTPOST, b"max-age=60, max-age=5")) == CacheControl(max_age=5)


def test_parameters_are_ignored() -> None:
    assert targeted((OUTPOST, b"max-age=60;x=1, no-store;y")) == CacheControl(
        max_age=60, no_store=True
    )


@pytest.mark.parametrize(
    ("directive", "flag", "fields"),
    [
        ("no-cache", "no_cache", "no_cache_fields"),
        ("private", "private", "private_fields"),
    ],
)
def test_a_string_qualifies_no_cache_and_private(directive: str, flag: str, fields: str) -> None:
    parsed = targeted((OUTPOST, f'{directive}="Set-Cookie, x-a"'.encode()))
    assert parsed is not None
    assert getattr(parsed, fields) == (b"set-cookie", b"x-a")
    assert not getattr(parsed, flag)


@pytest.mark.parametrize("value", ['"a b"', '""', "tok", "1"])
def test_a_qualifier_that_is_not_a_field_list_is_ignored(value: str) -> None:
    assert targeted((OUTPOST, f"private={value}, public".encode())) == CacheControl(public=True)


def test_request_directives_are_not_taken_from_a_targeted_field() -> None:
    assert targeted((OUTPOST, b"max-stale=5, min-fresh=1, only-if-cached")) == CacheControl()


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_fail(value: bytes) -> None:
    targeted((OUTPOST, value))


# --- what a non-Outpost client is sent ----------------------------------------------------


def test_strip_outpost_targeted_removes_only_outpost_cache_control() -> None:
    headers = [
        (b"cache-control", b"max-age=5"),
        (OUTPOST, b"max-age=60"),
        (CDN, b"max-age=30"),
        (OUTPOST, b"no-store"),
    ]
    assert strip_outpost_targeted(headers) == [
        (b"cache-control", b"max-age=5"),
        (CDN, b"max-age=30"),
    ]
