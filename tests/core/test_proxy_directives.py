"""Cache-Control parsing (RFC 9111 §4.2.1, §5.2, RFC 5861, RFC 8246): every directive, merged
field lines, quoted arguments, invalid and repeated arguments on each side, qualified
no-cache and private, huge delta-seconds."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.directives import CacheControl, parse_cache_control, request_cache_control

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
LIFETIMES = [("max-age", "max_age"), ("s-maxage", "s_maxage")]
WIDENERS = [
    ("stale-while-revalidate", "stale_while_revalidate"),
    ("stale-if-error", "stale_if_error"),
]
INVALID = ["100a", "1.5", "-1", "", " ", "1e3", "0x10", "+5", "5s", "6 0", '"6 0"', '""', "abc"]


def request(*values: str) -> CacheControl:
    return parse_cache_control(*values, request=True)


# --- the basics ----------------------------------------------------------------------------


def test_no_field_lines_give_the_defaults() -> None:
    assert parse_cache_control() == CacheControl()
    assert parse_cache_control(None, b"", "") == CacheControl()
    assert request() == CacheControl()


@pytest.mark.parametrize(("directive", "field"), FLAGS)
def test_each_flag_directive_sets_only_its_field(directive: str, field: str) -> None:
    assert parse_cache_control(directive) == CacheControl(**{field: True})
    assert request(directive) == CacheControl(**{field: True})


@pytest.mark.parametrize(("directive", "field"), DELTAS)
def test_each_delta_directive_sets_only_its_field(directive: str, field: str) -> None:
    assert parse_cache_control(f"{directive}=42") == CacheControl(**{field: 42})
    assert request(f"{directive}=42") == CacheControl(**{field: 42})


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


def test_directive_names_are_case_insensitive() -> None:
    assert parse_cache_control("Max-Age=60, NO-STORE, Public, S-MaxAge=5") == CacheControl(
        max_age=60, s_maxage=5, no_store=True, public=True
    )


def test_white_space_around_list_members_is_ignored() -> None:
    assert parse_cache_control("  max-age=60 ,\tpublic  ") == CacheControl(max_age=60, public=True)


def test_unknown_directives_are_ignored() -> None:
    assert parse_cache_control('foo, bar=baz, qux="a, b", max-age=5') == CacheControl(max_age=5)


def test_empty_list_members_are_skipped() -> None:
    assert parse_cache_control(",, max-age=5 ,, ,") == CacheControl(max_age=5)


def test_a_quoted_argument_with_commas_stays_one_directive() -> None:
    # Split on every comma, `max-age=0"` would surface as a directive of its own.
    assert parse_cache_control('foo="x, max-age=0", s-maxage=9') == CacheControl(s_maxage=9)


def test_an_escaped_quote_does_not_end_a_quoted_argument() -> None:
    assert parse_cache_control(r'foo="a\", max-age=0", s-maxage=9') == CacheControl(s_maxage=9)


def test_a_parsed_value_is_frozen() -> None:
    parsed = parse_cache_control("max-age=5")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.max_age = 6  # type: ignore[misc]


def test_parsing_is_memoised_per_value() -> None:
    assert parse_cache_control(b"max-age=7") is parse_cache_control(b"max-age=7")


# --- delta-seconds -------------------------------------------------------------------------


@pytest.mark.parametrize(("directive", "field"), DELTAS)
def test_a_quoted_delta_seconds_is_accepted(directive: str, field: str) -> None:
    assert getattr(parse_cache_control(f'{directive}="60"'), field) == 60
    assert getattr(request(f'{directive}="60"'), field) == 60


def test_zero_is_a_valid_delta_seconds() -> None:
    assert parse_cache_control("max-age=0").max_age == 0


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


def test_a_delta_seconds_longer_than_python_parses_is_capped() -> None:
    # int() refuses strings of more than 4300 digits; the cap needs none of them.
    assert parse_cache_control("max-age=" + "9" * 5000).max_age == CAP
    assert parse_cache_control("max-age=" + "0" * 5000 + "7").max_age == 7


@given(st.integers(min_value=0, max_value=10**30))
def test_any_digit_string_is_read_as_its_value_capped(seconds: int) -> None:
    assert parse_cache_control(f"max-age={seconds}").max_age == min(seconds, CAP)
    assert request(f'max-age="{seconds}"').max_age == min(seconds, CAP)


# --- responses: invalid or conflicting freshness is stale ----------------------------------


@pytest.mark.parametrize("value", INVALID)
@pytest.mark.parametrize(("directive", "field"), LIFETIMES)
def test_an_invalid_response_lifetime_is_taken_as_zero(
    directive: str, field: str, value: str
) -> None:
    parsed = parse_cache_control(f"{directive}={value}, public")
    assert getattr(parsed, field) == 0
    assert parsed.public  # the rest of the line still counts


@pytest.mark.parametrize("value", [b"\xb2", b"\xb3", b"\xb9", b"1\xb2", "٣".encode()])
def test_non_ascii_digits_are_an_invalid_response_lifetime(value: bytes) -> None:
    # Field values are decoded as latin-1; str.isdigit() accepts '¹²³' but int() does not.
    parsed = parse_cache_control(b"max-age=" + value + b", public")
    assert parsed.max_age == 0
    assert parsed.public


@pytest.mark.parametrize("line", ["max-age = 60", "max-age =60", "max-age= 60", "max-age=\t60"])
def test_white_space_around_the_equals_sign_makes_a_response_lifetime_invalid(line: str) -> None:
    assert parse_cache_control(line).max_age == 0


@pytest.mark.parametrize(("directive", "field"), LIFETIMES)
def test_a_response_lifetime_without_argument_is_taken_as_zero(directive: str, field: str) -> None:
    assert getattr(parse_cache_control(directive), field) == 0


@pytest.mark.parametrize(("directive", "field"), LIFETIMES)
def test_conflicting_response_lifetimes_are_taken_as_zero(directive: str, field: str) -> None:
    assert getattr(parse_cache_control(f"{directive}=60, {directive}=5"), field) == 0
    assert getattr(parse_cache_control(f"{directive}=60", f"{directive}=5"), field) == 0


@pytest.mark.parametrize(("directive", "field"), LIFETIMES)
def test_a_valid_and_an_invalid_response_lifetime_conflict(directive: str, field: str) -> None:
    assert getattr(parse_cache_control(f"{directive}=soon, {directive}=60"), field) == 0
    assert getattr(parse_cache_control(f"{directive}=60, {directive}=soon"), field) == 0


@pytest.mark.parametrize(("directive", "field"), LIFETIMES)
def test_repeated_equal_response_lifetimes_are_fine(directive: str, field: str) -> None:
    assert getattr(parse_cache_control(f'{directive}=60, {directive}="60"'), field) == 60
    assert getattr(parse_cache_control(f"{directive}=60", f"{directive}=60"), field) == 60


def test_conflicting_lifetimes_that_both_cap_agree() -> None:
    assert parse_cache_control("max-age=3000000000, max-age=4000000000").max_age == CAP


def test_an_invalid_s_maxage_still_counts_as_present() -> None:
    # Present, it implies proxy-revalidate (RFC 9111 §5.2.2.10); its lifetime is 0.
    assert parse_cache_control("s-maxage=soon").s_maxage == 0


def test_directive_case_does_not_hide_a_conflict() -> None:
    assert parse_cache_control("MAX-AGE=1, max-age=2").max_age == 0


@pytest.mark.parametrize("value", INVALID)
@pytest.mark.parametrize(("directive", "field"), WIDENERS)
def test_an_invalid_stale_extension_is_ignored(directive: str, field: str, value: str) -> None:
    assert getattr(parse_cache_control(f"{directive}={value}"), field) is None
    assert getattr(parse_cache_control(directive), field) is None


@pytest.mark.parametrize(("directive", "field"), WIDENERS)
def test_conflicting_stale_extensions_take_the_smallest(directive: str, field: str) -> None:
    line = f"{directive}=60, {directive}=5, {directive}=bad, {directive}=30"
    assert getattr(parse_cache_control(line), field) == 5


# --- requests: invalid is ignored, repeats take the most restrictive ------------------------


@pytest.mark.parametrize("value", INVALID)
@pytest.mark.parametrize(("directive", "field"), DELTAS)
def test_an_invalid_request_argument_is_ignored(directive: str, field: str, value: str) -> None:
    parsed = request(f"{directive}={value}, only-if-cached")
    assert getattr(parsed, field) is None
    assert parsed.only_if_cached


def test_an_invalid_request_max_age_does_not_force_revalidation() -> None:
    assert request("max-age=soon").max_age is None
    assert request("max-age = 0").max_age is None
    assert request("max-age").max_age is None


def test_request_max_stale_without_value_means_any_staleness() -> None:
    assert request("max-stale").max_stale == CAP
    assert request("max-stale=30").max_stale == 30


def test_an_invalid_request_max_stale_is_not_any_staleness() -> None:
    assert request("max-stale=abc").max_stale is None
    assert request("max-stale=abc, max-stale").max_stale == CAP


def test_repeated_request_max_age_takes_the_smallest() -> None:
    assert request("max-age=60, max-age=5, max-age=bad").max_age == 5
    assert request("max-age=5", "max-age=60").max_age == 5


def test_repeated_request_max_stale_takes_the_smallest() -> None:
    assert request("max-stale, max-stale=10, max-stale=100").max_stale == 10


def test_repeated_request_min_fresh_takes_the_largest() -> None:
    assert request("min-fresh=5, min-fresh=60, min-fresh=x").min_fresh == 60


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=6))
def test_request_repeats_take_the_most_restrictive_value(values: list[int]) -> None:
    line = ", ".join(f"max-age={v}, max-stale={v}, min-fresh={v}" for v in values)
    parsed = request(line)
    assert (parsed.max_age, parsed.max_stale, parsed.min_fresh) == (
        min(values),
        min(values),
        max(values),
    )


def test_request_no_cache_is_always_unqualified() -> None:
    assert request('no-cache="x"') == CacheControl(no_cache=True)


def test_request_cache_control_uses_the_request_rules() -> None:
    assert request_cache_control([b"max-age=soon"], []) == CacheControl()
    assert request_cache_control([b"max-age=5, max-age=1"], []).max_age == 1


def test_pragma_no_cache_counts_only_without_cache_control() -> None:
    assert request_cache_control([], [b"No-Cache"]) == CacheControl(no_cache=True)
    assert not request_cache_control([b"max-stale=1"], [b"no-cache"]).no_cache
    assert request_cache_control([b"max-stale=1"], [b"no-cache"], pragma_always=True).no_cache


# --- qualified no-cache and private --------------------------------------------------------


@pytest.mark.parametrize(
    ("directive", "flag", "fields"),
    [
        ("no-cache", "no_cache", "no_cache_fields"),
        ("private", "private", "private_fields"),
    ],
)
def test_a_qualified_directive_names_fields_without_setting_its_flag(
    directive: str, flag: str, fields: str
) -> None:
    parsed = parse_cache_control(f'{directive}="Set-Cookie, X-Secret", max-age=5')
    assert getattr(parsed, fields) == (b"set-cookie", b"x-secret")
    assert not getattr(parsed, flag)
    assert parsed.max_age == 5


@pytest.mark.parametrize(
    ("directive", "flag", "fields"),
    [
        ("no-cache", "no_cache", "no_cache_fields"),
        ("private", "private", "private_fields"),
    ],
)
def test_an_unqualified_directive_sets_its_flag(directive: str, flag: str, fields: str) -> None:
    parsed = parse_cache_control(directive)
    assert getattr(parsed, flag)
    assert getattr(parsed, fields) == ()


@pytest.mark.parametrize("directive", ["no-cache", "private"])
def test_the_token_form_of_a_field_name_qualifies_too(directive: str) -> None:
    # RFC 9111 §5.2.2.4: a sender SHOULD NOT generate it, so a recipient still meets it.
    assert parse_cache_control(f"{directive}=set-cookie") == parse_cache_control(
        f'{directive}="set-cookie"'
    )


@pytest.mark.parametrize(
    ("directive", "flag", "fields"),
    [
        ("no-cache", "no_cache", "no_cache_fields"),
        ("private", "private", "private_fields"),
    ],
)
def test_unqualified_wins_over_qualified(directive: str, flag: str, fields: str) -> None:
    for line in (f'{directive}="a", {directive}', f'{directive}, {directive}="a"'):
        parsed = parse_cache_control(line)
        assert getattr(parsed, flag), line
        assert getattr(parsed, fields) == (), line


def test_qualified_occurrences_are_merged() -> None:
    parsed = parse_cache_control('private="a, b"', 'private="B, c"')
    assert parsed.private_fields == (b"a", b"b", b"c")
    assert not parsed.private


@pytest.mark.parametrize("argument", ['""', '" , "', '"a b"', '"x, max-age=0"', "a=b", '"a'])
@pytest.mark.parametrize(("directive", "flag"), [("no-cache", "no_cache"), ("private", "private")])
def test_an_argument_that_is_not_a_field_list_counts_as_unqualified(
    directive: str, flag: str, argument: str
) -> None:
    assert getattr(parse_cache_control(f"{directive}={argument}"), flag)


# --- everything at once --------------------------------------------------------------------

members = st.sampled_from(
    [
        "max-age=1",
        "max-age=x",
        's-maxage="2"',
        "no-store",
        'private="a"',
        "no-cache",
        "max-stale",
        "max-stale=3",
        "min-fresh=4",
        "stale-if-error=5",
        "foo=bar",
        '"',
        "=",
        ",",
    ]
)


@given(st.lists(members, max_size=8), st.booleans())
def test_parsing_never_fails_and_yields_valid_deltas(items: list[str], is_request: bool) -> None:
    parsed = parse_cache_control(", ".join(items), request=is_request)
    for _, field in DELTAS:
        value = getattr(parsed, field)
        assert value is None or 0 <= value <= CAP


@given(st.binary(max_size=64), st.booleans())
def test_arbitrary_bytes_never_fail_to_parse(value: bytes, is_request: bool) -> None:
    parse_cache_control(value, request=is_request)
