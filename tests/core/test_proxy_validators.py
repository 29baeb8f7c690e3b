"""Client conditionals answered from a stored entry (RFC 9110 §13.1.1, §13.1.3, §13.2.2), and
entity-tag syntax and comparison (RFC 9110 §8.8.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core import entry as entry_module
from proxy.core.entry import Entry
from proxy.core.validators import not_modified, parse_entity_tags, strong_match, weak_match

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


# --- entity-tag syntax (RFC 9110 §8.8.3) ---------------------------------------------------


@pytest.mark.parametrize("value", ["v1", "W/v1", "'v1'", '"v1', 'w/"v1"', '"a" "v1"', '"a"x'])
def test_a_malformed_if_none_match_matches_nothing(value: str) -> None:
    assert not inm(value)


@pytest.mark.parametrize("value", ['v1, "v1"', '"v1", v1', '*, "v1"', '"v1" "v1"'])
def test_a_list_with_a_malformed_member_matches_nothing(value: str) -> None:
    assert not inm(value)


@pytest.mark.parametrize("stored", ["v1", "W/v1", '"v1', ""])
def test_a_stored_etag_that_is_not_an_entity_tag_never_matches(stored: str) -> None:
    entry = make_entry({"etag": stored})
    assert not inm('"v1"', entry)
    assert not inm(f'"{stored}"', entry)
    assert not inm(stored or '""', entry)


def test_star_still_matches_a_stored_malformed_etag() -> None:
    assert inm("*", make_entry({"etag": "v1"}))


def test_a_quoted_tag_may_hold_a_comma() -> None:
    assert inm('"a,b"', make_entry({"etag": '"a,b"'}))
    assert not inm('"a,b"', make_entry({"etag": '"a"'}))


def test_an_empty_opaque_tag_is_a_valid_tag() -> None:
    assert inm('""', make_entry({"etag": '""'}))


def test_an_empty_if_none_match_matches_nothing() -> None:
    assert not inm("")
    assert not inm(",")


def test_if_none_match_trailing_comma_is_tolerated() -> None:
    assert inm('"v1",')


def test_a_malformed_if_none_match_still_disables_if_modified_since() -> None:
    # RFC 9110 §13.1.3: If-Modified-Since counts only without If-None-Match.
    assert not not_modified(TAGGED, b"v1", AFTER.encode())


# --- methods -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_and_head_are_answered_304(method: str) -> None:
    assert not_modified(TAGGED, b'"v1"', None, method=method)
    assert not_modified(TAGGED, None, AFTER.encode(), method=method)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_are_never_answered_304(method: str) -> None:
    assert not not_modified(TAGGED, b'"v1"', None, method=method)
    assert not not_modified(TAGGED, b"*", None, method=method)
    assert not not_modified(TAGGED, None, AFTER.encode(), method=method)


# --- comparison functions (RFC 9110 §8.8.3.2's table) ---------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "strong", "weak"),
    [
        (b'W/"1"', b'W/"1"', False, True),
        (b'W/"1"', b'W/"2"', False, False),
        (b'W/"1"', b'"1"', False, True),
        (b'"1"', b'"1"', True, True),
    ],
)
def test_the_comparison_table_of_rfc_9110(a: bytes, b: bytes, strong: bool, weak: bool) -> None:
    assert strong_match(a, b) is strong
    assert strong_match(b, a) is strong
    assert weak_match(a, b) is weak
    assert weak_match(b, a) is weak


@pytest.mark.parametrize("bad", [b"1", b"W/1", b'"1', b"*", b"", b'w/"1"'])
def test_a_malformed_tag_matches_nothing_either_way(bad: bytes) -> None:
    for other in (bad, b'"1"', b'W/"1"'):
        assert not strong_match(bad, other)
        assert not weak_match(bad, other)
        assert not weak_match(other, bad)


def test_opaque_tags_compare_character_by_character() -> None:
    assert not weak_match(b'"a"', b'"A"')
    assert weak_match(b' "a" ', b'"a"')


def test_parse_entity_tags_returns_the_tags_in_order() -> None:
    assert parse_entity_tags(b' "a" ,, W/"b",') == (b'"a"', b'W/"b"')
    assert parse_entity_tags(b" * ") == (b"*",)
    assert parse_entity_tags(b"a") is None


opaque = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"'), max_size=8
)


@given(opaque, opaque, st.booleans(), st.booleans())
def test_weak_match_is_strong_match_without_the_weak_flags(
    a: str, b: str, weak_a: bool, weak_b: bool
) -> None:
    tag_a = (("W/" if weak_a else "") + f'"{a}"').encode()
    tag_b = (("W/" if weak_b else "") + f'"{b}"').encode()
    assert weak_match(tag_a, tag_b) == strong_match(f'"{a}"'.encode(), f'"{b}"'.encode())
    assert strong_match(tag_a, tag_b) == (a == b and not weak_a and not weak_b)


@given(st.lists(st.tuples(opaque, st.booleans()), min_size=1, max_size=5), st.data())
def test_if_none_match_matches_exactly_when_a_listed_tag_matches_weakly(
    tags: list[tuple[str, bool]], data: st.DataObject
) -> None:
    stored = data.draw(opaque)
    entry = make_entry({"etag": f'"{stored}"'})
    value = ", ".join(("W/" if weak else "") + f'"{tag}"' for tag, weak in tags)
    assert inm(value, entry) == any(tag == stored for tag, _ in tags)


@given(st.binary(max_size=40))
def test_arbitrary_if_none_match_values_never_fail(value: bytes) -> None:
    not_modified(TAGGED, value, None)
