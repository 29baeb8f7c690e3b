"""What a shared fetch sends upstream: the key's target and a fixed, cleaned set of fields, so
nothing one client sends beyond them reaches an answer every client is served."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.directives import CacheControl, parse_cache_control
from proxy.core.shared import (
    FORWARDED_FIELDS,
    MAX_FIELD_BYTES,
    normalise_list,
    shared_request_headers,
    shared_value,
)

OWN_ID = b"outpost-proxy edge"
NONE = CacheControl()


def shared(headers: list[tuple[bytes, bytes]], cc: CacheControl = NONE, *, frontier: bool = False):
    return dict(shared_request_headers(headers, cc, frontier=frontier, own_id=OWN_ID))


def test_headers_that_upstreams_reflect_are_never_forwarded() -> None:
    sent = shared(
        [
            (b"x-forwarded-host", b"evil.example"),
            (b"x-forwarded-proto", b"gopher"),
            (b"x-original-url", b"/admin"),
            (b"cookie", b"session=alice"),
            (b"authorization", b"Bearer secret"),
            (b"user-agent", b"curl"),
            (b"accept-language", b"de"),
        ]
    )
    assert sent == {b"accept-language": b"de", b"accept-encoding": b"identity"}


def test_accept_encoding_goes_up_as_the_variant_it_selects() -> None:
    assert shared([(b"accept-encoding", b"br, gzip;q=0.5")])[b"accept-encoding"] == b"gzip"
    assert shared([(b"accept-encoding", b"gzip;q=0")])[b"accept-encoding"] == b"identity"
    assert shared([])[b"accept-encoding"] == b"identity"


def test_values_are_trimmed_and_unusable_ones_dropped() -> None:
    """A leader's `X: v␠` or control byte must not fail the fetch its waiters share."""
    assert shared([(b"accept", b"  text/xml  ")])[b"accept"] == b"text/xml"
    assert b"accept" not in shared([(b"accept", b"a\x01b")])
    assert b"accept" not in shared([(b"accept", b"x" * (MAX_FIELD_BYTES + 1))])
    assert b"accept" not in shared([(b"accept", b"   ")])


def test_a_frontier_fetch_always_carries_an_id() -> None:
    assert shared([], frontier=True)[b"x-frontier-id"] == OWN_ID
    client = (b"x-frontier-id", b"CMSSW_14 pid=7; user ")
    assert shared([client], frontier=True)[b"x-frontier-id"] == b"CMSSW_14 pid=7; user"
    assert shared([(b"x-frontier-id", b"\x7f")], frontier=True)[b"x-frontier-id"] == OWN_ID
    assert b"x-frontier-id" not in shared([client])  # only Frontier URLs


def test_request_directives_are_re_rendered_not_relayed() -> None:
    """`max-stale` (which a servlet echoes as `stale-if-error`) stays with its request."""
    soft = parse_cache_control(b"max-stale=999999999, max-age=0, x-evil=1")
    assert shared([], soft)[b"cache-control"] == b"max-age=0"
    hard = parse_cache_control(b"no-cache, max-stale=5")
    sent = shared([], hard)
    assert (sent[b"cache-control"], sent[b"pragma"]) == (b"no-cache", b"no-cache")
    assert b"cache-control" not in shared([], parse_cache_control(b"max-stale=999999999"))


field_names = st.sampled_from(
    [b"accept", b"accept-language", b"x-frontier-id", b"x-forwarded-host", b"cookie", b"x-a"]
)


@given(st.lists(st.tuples(field_names, st.binary(max_size=64)), max_size=8), st.booleans())
def test_every_shared_fetch_carries_only_allowed_sendable_fields(
    headers: list[tuple[bytes, bytes]], frontier: bool
) -> None:
    sent = shared_request_headers(headers, NONE, frontier=frontier, own_id=OWN_ID)
    for name, value in sent:
        assert name in FORWARDED_FIELDS
        assert value == value.strip() and value
        assert all(0x20 <= byte < 0x7F for byte in value)


@given(st.binary(max_size=80))
def test_shared_value_is_idempotent(value: bytes) -> None:
    cleaned = shared_value(value)
    if cleaned is not None:
        assert shared_value(cleaned) == cleaned


# --- normalise_list: one spelling for the key and the fetch -------------------------------


def test_accept_language_loses_white_space_case_and_order_by_weight() -> None:
    assert normalise_list(b"accept-language", b"EN;q=0.8 ,fr-ch,fr;q=0.9") == (
        b"fr-ch,fr;q=0.9,en;q=0.8"
    )


def test_accept_language_members_of_equal_weight_keep_the_client_order() -> None:
    # RFC 9110 §12.5.4: some recipients read the order of equal weights as a priority.
    assert normalise_list(b"accept-language", b"fr, en") == b"fr,en"
    assert normalise_list(b"accept-language", b"en, fr") == b"en,fr"


@pytest.mark.parametrize(
    ("weight", "rendered"),
    [
        ("1", b"de"),
        ("1.000", b"de"),
        ("1.", b"de"),
        ("0.5", b"de;q=0.5"),
        ("0.500", b"de;q=0.5"),
        ("0.05", b"de;q=0.05"),
        ("0.001", b"de;q=0.001"),
        ("0", b"de;q=0"),
        ("0.000", b"de;q=0"),
    ],
)
def test_a_weight_takes_one_spelling(weight: str, rendered: bytes) -> None:
    assert normalise_list(b"accept-language", f"de;q={weight}".encode()) == rendered
    assert normalise_list(b"accept-language", f"DE ; Q={weight}".encode()) == rendered


def test_a_weight_of_zero_is_kept() -> None:
    # "not acceptable" is a preference: dropped, it would read as "no opinion".
    assert normalise_list(b"accept-language", b"en;q=0, de") == b"de,en;q=0"


@pytest.mark.parametrize("weight", ["2", "1.5", "1.0001", "0.1234", "-1", "", "x", ".5"])
def test_a_member_with_an_invalid_weight_is_dropped(weight: str) -> None:
    assert normalise_list(b"accept-language", f"fr;q={weight}, de".encode()) == b"de"


@pytest.mark.parametrize(
    "member", [";", ";q=1", "fr_CH", "toolonglanguage", "fr;level=1", "fr;q=1;q=1", "1fr"]
)
def test_an_invalid_language_member_is_dropped(member: str) -> None:
    assert normalise_list(b"accept-language", f"{member}, de".encode()) == b"de"


def test_a_value_with_nothing_valid_is_absent() -> None:
    assert normalise_list(b"accept-language", b"fr;q=5") is None
    assert normalise_list(b"accept", b"html") is None


def test_accept_loses_white_space_and_the_case_of_types_and_parameter_names() -> None:
    assert normalise_list(b"accept", b"Text/HTML ; Level=1 ;Q=0.50 ,  application/json") == (
        b"text/html;level=1;q=0.5,application/json"
    )


def test_accept_keeps_the_case_of_parameter_values_and_its_order() -> None:
    # RFC 9110 §8.3.1: parameter values may be case-sensitive; Accept's order is not sorted.
    assert normalise_list(b"accept", b"b/b;v=ABC, a/a") == b"b/b;v=ABC,a/a"


def test_a_quoted_parameter_value_keeps_its_commas() -> None:
    assert normalise_list(b"accept", b'a/b;c="x, y", c/d') == b'a/b;c="x, y",c/d'


@pytest.mark.parametrize("member", [";", ";q=1", "html", "a/b;c = 1", "a/b;q=2", "a/b c", "a/b;c"])
def test_an_invalid_accept_member_is_dropped(member: str) -> None:
    assert normalise_list(b"accept", f"{member}, text/xml".encode()) == b"text/xml"


def test_other_fields_are_only_trimmed() -> None:
    assert normalise_list(b"x-frontier-id", b"  CMSSW pid=7 ") == b"CMSSW pid=7"


@pytest.mark.parametrize("name", [b"accept", b"accept-language", b"x-frontier-id"])
def test_control_bytes_make_a_value_unusable(name: bytes) -> None:
    assert normalise_list(name, b"de\x01") is None
    assert normalise_list(name, b"de\xff") is None


def test_a_value_too_long_to_parse_is_unusable() -> None:
    assert normalise_list(b"accept-language", b" " * 5000 + b"de") is None


def test_a_result_over_the_bound_is_unusable() -> None:
    assert normalise_list(b"accept-language", b",".join([b"de"] * 600)) is None


def test_the_shared_fetch_sends_the_normalised_value() -> None:
    sent = shared([(b"accept-language", b"EN;q=0.8 ,fr-ch"), (b"accept", b"Text/XML ")])
    assert sent[b"accept-language"] == b"fr-ch,en;q=0.8"
    assert sent[b"accept"] == b"text/xml"


languages = st.from_regex(r"[a-z]{1,8}(-[a-z0-9]{1,8})?", fullmatch=True)


@given(st.lists(st.tuples(languages, st.integers(0, 1000)), min_size=1, max_size=6))
def test_accept_language_normalisation_is_idempotent(members: list[tuple[str, int]]) -> None:
    value = ", ".join(f"{tag};q={q / 1000:.3f}" for tag, q in members).encode()
    once = normalise_list(b"accept-language", value)
    assert once is not None
    assert normalise_list(b"accept-language", once) == once


@given(st.binary(max_size=200), st.sampled_from(sorted(FORWARDED_FIELDS - {b"accept-encoding"})))
def test_a_normalised_value_is_always_sendable(value: bytes, name: bytes) -> None:
    normal = normalise_list(name, value)
    if normal is not None:
        assert 0 < len(normal) <= MAX_FIELD_BYTES
        assert normal == normal.strip()
        assert all(0x20 <= byte < 0x7F for byte in normal)
