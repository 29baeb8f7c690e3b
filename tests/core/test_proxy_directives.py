"""Cache-Control parsing (RFC 9111 §5.2, RFC 5861, RFC 8246): every directive, merged field
lines, quoted arguments, malformed and huge delta-seconds."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.core.directives import CacheControl, parse_cache_control

CAP = 2**31  # RFC 9111 §1.2.2

FLAGS = [
    ("no-store", "no_store"),
    ("no-cache", "no_cache"),
    ("private", "private"),
    ("public", "public"),
    ("must-revalidate", "must_revalidate"),
    ("proxy-revalidate", "proxy_revalidate"),
    ("immutable", "immutable"),
    ("only-if-cached", "only_if_cached"),
]
DELTAS = [
    ("max-age", "max_age"),
    ("s-maxage", "s_maxage"),
    ("stale-while-revalidate", "stale_while_revalidate"),
    ("stale-if-error", "stale_if_error"),
    ("max-stale", "max_stale"),
    ("min-fresh", "min_fresh"),
]


def test_no_field_lines_give_the_defaults() -> None:
    assert parse_cache_control() == CacheControl()
    assert parse_cache_control(None, b"", "") == CacheControl()


@pytest.mark.parametrize(("directive", "field"), FLAGS)
def test_each_flag_directive_sets_only_its_field(directive: str, field: str) -> None:
    assert parse_cache_control(directive) == CacheControl(**{field: True})


@pytest.mark.parametrize(("directive", "field"), DELTAS)
def test_each_delta_directive_sets_only_its_field(directive: str, field: str) -> None:
    assert parse_cache_control(f"{directive}=42") == CacheControl(**{field: 42})


def test_every_directive_is_parsed_from_one_field_line() -> None:
    line = (
        "max-age=1, s-maxage=2, no-store, no-cache, private, public, must-revalidate, "
        "proxy-revalidate, immutable, stale-while-revalidate=3, stale-if-error=4, "
        "max-stale=5, min-fresh=6, only-if-cached"
    )
    assert parse_cache_control(line) == CacheControl(
        max_age=1,
        s_maxage=2,
        no_store=True,
        no_cache=True,
        private=True,
        public=True,
        must_revalidate=True,
        proxy_revalidate=True,
        immutable=True,
        stale_while_revalidate=3,
        stale_if_error=4,
        max_stale=5,
        min_fresh=6,
        only_if_cached=True,
    )


def test_bytes_and_text_field_values_parse_alike() -> None:
    assert parse_cache_control(b"max-age=60, public") == parse_cache_control("max-age=60, public")


def test_field_lines_are_merged() -> None:
    assert parse_cache_control(b"max-age=60", b"no-store", b"immutable") == CacheControl(
        max_age=60, no_store=True, immutable=True
    )


def test_the_first_occurrence_of_a_directive_wins_within_a_line() -> None:
    assert parse_cache_control("max-age=60, max-age=5").max_age == 60


def test_the_first_occurrence_of_a_directive_wins_across_lines() -> None:
    assert parse_cache_control(b"max-age=60", b"max-age=5").max_age == 60
    assert parse_cache_control(b"s-maxage=7, public", b"s-maxage=99").s_maxage == 7


def test_a_malformed_first_max_age_is_not_replaced_by_a_later_one() -> None:
    assert parse_cache_control("max-age=soon, max-age=60").max_age is None


def test_a_quoted_argument_with_commas_stays_one_directive() -> None:
    # Split on every comma, `max-age=0"` would surface as a directive of its own.
    assert parse_cache_control('no-cache="x, max-age=0", s-maxage=9') == CacheControl(
        no_cache=True, s_maxage=9
    )
    assert parse_cache_control('private="a, b", max-age=5') == CacheControl(private=True, max_age=5)


def test_qualified_no_cache_and_private_still_count() -> None:
    assert parse_cache_control('no-cache="set-cookie"').no_cache
    assert parse_cache_control('private="authorization"').private


def test_a_quoted_delta_seconds_is_accepted() -> None:
    assert parse_cache_control('max-age="60"').max_age == 60


@pytest.mark.parametrize(
    "value",
    ["-1", "1.5", "abc", "", " ", "1e3", "0x10", "+5", "5s", "6 0"],
)
@pytest.mark.parametrize(("directive", "field"), DELTAS)
def test_a_malformed_delta_seconds_is_ignored(directive: str, field: str, value: str) -> None:
    parsed = parse_cache_control(f"{directive}={value}, public")
    assert getattr(parsed, field) is None
    assert parsed.public  # the rest of the line still counts


@pytest.mark.parametrize("value", [b"\xb2", b"\xb3", b"\xb9", b"1\xb2"])
def test_latin1_superscript_digits_are_a_malformed_delta_seconds(value: bytes) -> None:
    # Field values are decoded as latin-1; str.isdigit() accepts '¹²³' but int() does not.
    parsed = parse_cache_control(b"max-age=" + value + b", public")
    assert parsed.max_age is None
    assert parsed.public


@pytest.mark.parametrize(("directive", "field"), [d for d in DELTAS if d[0] != "max-stale"])
def test_a_delta_directive_without_argument_is_absent(directive: str, field: str) -> None:
    assert getattr(parse_cache_control(directive), field) is None


def test_max_stale_without_value_means_any_staleness() -> None:
    assert parse_cache_control("max-stale").max_stale == CAP
    assert parse_cache_control("max-stale=30").max_stale == 30


def test_max_stale_with_a_malformed_value_is_ignored() -> None:
    assert parse_cache_control("max-stale=later").max_stale is None


def test_directive_names_are_case_insensitive() -> None:
    assert parse_cache_control("Max-Age=60, NO-STORE, Public, S-MaxAge=5") == CacheControl(
        max_age=60, s_maxage=5, no_store=True, public=True
    )


def test_first_occurrence_wins_whatever_its_case() -> None:
    assert parse_cache_control("MAX-AGE=1, max-age=2").max_age == 1


def test_whitespace_around_names_and_arguments_is_ignored() -> None:
    assert parse_cache_control("  max-age = 60 ,\tpublic  ") == CacheControl(
        max_age=60, public=True
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2147483647", 2**31 - 1),
        ("2147483648", CAP),
        ("2147483649", CAP),
        ("99999999999999999999999999", CAP),
    ],
)
def test_huge_delta_seconds_are_capped_at_2_to_the_31(value: str, expected: int) -> None:
    parsed = parse_cache_control(f"max-age={value}, stale-if-error={value}")
    assert parsed.max_age == expected
    assert parsed.stale_if_error == expected


def test_zero_is_a_valid_delta_seconds() -> None:
    assert parse_cache_control("max-age=0").max_age == 0


def test_unknown_directives_are_ignored() -> None:
    assert parse_cache_control('foo, bar=baz, qux="a, b", max-age=5') == CacheControl(max_age=5)


def test_empty_list_members_are_skipped() -> None:
    assert parse_cache_control(",, max-age=5 ,, ,") == CacheControl(max_age=5)


def test_a_parsed_value_is_frozen() -> None:
    parsed = parse_cache_control("max-age=5")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.max_age = 6  # type: ignore[misc]
