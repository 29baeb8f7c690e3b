"""The strict YAML of `outpost db load`: a scalar is null, true, false, a plain decimal integer or
a string, never a YAML 1.1 reading (`no`, `010`, `1:30`); duplicate keys, anchors, aliases and
explicit tags are errors."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from origin.documents import StrictLoader


def strict(text: str) -> Any:
    return yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        ("010", "010"),
        ("1:30", "1:30"),
        ("0o17", "0o17"),
        ("0x1F", "0x1F"),
        ("1_000", "1_000"),
        ("-0", "-0"),
        ("+5", "+5"),
        ("1.5", "1.5"),
        ("1e3", "1e3"),
        (".inf", ".inf"),
        ("2026-05-01", "2026-05-01"),
        ("0" * 64, "0" * 64),
        ("no", "no"),
        ("off", "off"),
        ("yes", "yes"),
        ("True", "True"),
        ("'false'", "false"),
        ('"12"', "12"),
        ("0", 0),
        ("-12", -12),
        ("9" * 30, int("9" * 30)),
        ("true", True),
        ("false", False),
        ("null", None),
        ("~", None),
        ("", None),
    ],
)
def test_a_scalar_is_read_as_written_or_as_a_string(scalar: str, value: Any) -> None:
    loaded = strict(f"a: {scalar}")["a"]
    assert loaded == value and type(loaded) is type(value)


PLAIN = st.text(string.ascii_letters + string.digits + "-+._:~ ", min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(PLAIN)
@example("010")
@example("1:30")
@example("0b101")
def test_an_integer_is_only_ever_its_one_decimal_spelling(text: str) -> None:
    """Whatever plain scalar is written, it is read as an int only when writing the int back
    gives the same text; else it is a string (or null/bool for exactly their words)."""
    try:
        loaded = strict(f"a: {text}")["a"]
    except yaml.YAMLError:
        return  # not a plain scalar at all (e.g. ": " inside): refused, never reinterpreted
    if isinstance(loaded, bool):
        assert text.strip() in ("true", "false")
    elif isinstance(loaded, int):
        assert str(loaded) == text.strip()
    elif loaded is not None:
        assert isinstance(loaded, str) and loaded == text.strip()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: 1\na: 2", "duplicate key 'a'"),
        ("tags:\n  - {name: T, name: U}", "duplicate key 'name'"),
        ("a: &x [1]\nb: *x", "anchors and aliases"),
        ("a: !!int '010'", "explicit tags"),
        ("a: !!binary aGk=", "explicit tags"),
        ("a: !!python/object:os.system x", "explicit tags"),
        ("1: x", "a key must be a string"),
        ("? [1]\n: x", "a key must be a string"),
    ],
)
def test_what_would_change_a_value_is_an_error(text: str, problem: str) -> None:
    with pytest.raises(yaml.YAMLError, match=re.escape(problem)):
        strict(text)


def test_billion_laughs_is_refused_at_the_first_alias_with_a_short_message() -> None:
    laughs = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n"
        for a, b in zip("abcdefgh", "bcdefghi", strict=False)
    )
    with pytest.raises(yaml.YAMLError) as raised:
        strict(laughs)
    assert len(str(raised.value)) < 500
