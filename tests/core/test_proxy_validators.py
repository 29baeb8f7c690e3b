"""Client conditionals answered from a stored entry (RFC 9110 §13.1.1, §13.1.3, §13.2.2)."""

from __future__ import annotations

import pytest

from proxy.core import entry as entry_module
from proxy.core.entry import Entry
from proxy.core.validators import not_modified

SECOND = 1_000_000
NOW = 1_800_000_000 * SECOND
MODIFIED = "Sun, 06 Nov 1994 08:49:37 GMT"
BEFORE = "Sun, 06 Nov 1994 08:49:36 GMT"
AFTER = "Sun, 06 Nov 1994 08:49:38 GMT"


def make_entry(headers: dict[str, str] | None = None, *, status: int = 200) -> Entry:
    base = {"cache-control": "max-age=60"}
    pairs = [(k.encode(), v.encode()) for k, v in {**base, **(headers or {})}.items()]
    return entry_module.make_entry(status, pairs, b"body", NOW, NOW, 1)


TAGGED = make_entry({"etag": '"v1"', "last-modified": MODIFIED})


def inm(value: str, entry: Entry = TAGGED) -> bool:
    return not_modified(entry, value.encode(), None)


def ims(value: str, entry: Entry = TAGGED) -> bool:
    return not_modified(entry, None, value.encode())


# --- If-None-Match -----------------------------------------------------------------------


def test_if_none_match_with_the_stored_tag_is_not_modified() -> None:
    assert inm('"v1"')


def test_if_none_match_with_another_tag_is_modified() -> None:
    assert not inm('"v2"')
    assert not inm('"V1"')  # opaque tags compare case-sensitively


@pytest.mark.parametrize(
    ("stored", "sent"),
    [('"v1"', 'W/"v1"'), ('W/"v1"', '"v1"'), ('W/"v1"', 'W/"v1"'), ('W/"v1"', ' W/"v1" ')],
)
def test_if_none_match_uses_the_weak_comparison(stored: str, sent: str) -> None:
    assert inm(sent, make_entry({"etag": stored}))


@pytest.mark.parametrize("value", ['"a", "v1"', '"v1","a"', ' "a" ,  W/"v1" ', '"a",,"v1"'])
def test_if_none_match_matches_any_tag_in_its_list(value: str) -> None:
    assert inm(value)


def test_if_none_match_with_no_listed_tag_matching_is_modified() -> None:
    assert not inm('"a", W/"b", "c"')


@pytest.mark.parametrize("value", ["*", " * "])
def test_if_none_match_star_matches_any_stored_representation(value: str) -> None:
    assert inm(value)
    assert inm(value, make_entry())  # even one without an ETag


def test_a_stored_entry_without_etag_matches_no_listed_tag() -> None:
    assert not inm('"v1"', make_entry({"last-modified": MODIFIED}))


def test_if_none_match_takes_precedence_over_if_modified_since() -> None:
    # RFC 9110 §13.1.3: If-Modified-Since is ignored when If-None-Match is present.
    assert not not_modified(TAGGED, b'"other"', AFTER.encode())
    assert not_modified(TAGGED, b'"v1"', BEFORE.encode())


def test_if_none_match_on_an_entry_without_etag_ignores_if_modified_since() -> None:
    entry = make_entry({"last-modified": MODIFIED})
    assert not not_modified(entry, b'"v1"', AFTER.encode())


# --- If-Modified-Since -------------------------------------------------------------------


@pytest.mark.parametrize("value", [MODIFIED, AFTER, "Mon, 07 Nov 1994 00:00:00 GMT"])
def test_not_modified_since_a_date_at_or_after_last_modified(value: str) -> None:
    assert ims(value)


def test_modified_since_a_date_before_last_modified() -> None:
    assert not ims(BEFORE)


@pytest.mark.parametrize("value", ["yesterday", "", "0", "Sun, 32 Nov 1994 08:49:37 GMT"])
def test_an_invalid_if_modified_since_is_ignored(value: str) -> None:
    assert not ims(value)


def test_if_modified_since_without_a_stored_last_modified_is_modified() -> None:
    assert not ims(AFTER, make_entry({"etag": '"v1"'}))


def test_if_modified_since_accepts_the_obsolete_date_formats() -> None:
    assert ims("Sunday, 06-Nov-94 08:49:37 GMT")
    assert ims("Sun Nov  6 08:49:37 1994")


def test_no_conditions_is_modified() -> None:
    assert not not_modified(TAGGED, None, None)


# --- stored status -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [203, 301, 404, 410, 501])
def test_only_a_stored_200_is_answered_304(status: int) -> None:
    entry = make_entry({"etag": '"v1"', "last-modified": MODIFIED}, status=status)
    assert not not_modified(entry, b'"v1"', None)
    assert not not_modified(entry, b"*", None)
    assert not not_modified(entry, None, AFTER.encode())
