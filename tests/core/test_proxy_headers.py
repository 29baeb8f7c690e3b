"""Header hygiene: hop-by-hop fields stripped (RFC 9110 §7.6.1), `Via` appended (§7.6.3), and
field lookup over lists of (name, value) pairs."""

from __future__ import annotations

import pytest

from proxy.core.headers import HOP_BY_HOP, end_to_end, get_all, get_first, with_via

END_TO_END = [
    (b"cache-control", b"max-age=60"),
    (b"etag", b'"v1"'),
    (b"content-type", b"application/json"),
]


# --- end_to_end --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HOP_BY_HOP))
def test_every_hop_by_hop_field_is_dropped(name: bytes) -> None:
    assert end_to_end([*END_TO_END, (name, b"x")]) == END_TO_END


@pytest.mark.parametrize(
    "name", [b"Connection", b"Keep-Alive", b"TE", b"Transfer-Encoding", b"UPGRADE"]
)
def test_hop_by_hop_fields_are_dropped_whatever_their_case(name: bytes) -> None:
    assert end_to_end([(name, b"x"), *END_TO_END]) == END_TO_END


def test_the_standard_hop_by_hop_fields_are_all_known() -> None:
    required = {b"connection", b"proxy-connection", b"keep-alive", b"te", b"transfer-encoding"}
    assert required | {b"upgrade"} <= HOP_BY_HOP


def test_fields_named_in_connection_are_dropped() -> None:
    headers = [(b"connection", b"X-Trace, close"), (b"x-trace", b"abc"), *END_TO_END]
    assert end_to_end(headers) == END_TO_END


def test_connection_options_are_matched_case_insensitively_and_trimmed() -> None:
    headers = [(b"Connection", b"  X-Trace  ,X-OTHER"), (b"X-Trace", b"1"), (b"x-other", b"2")]
    assert end_to_end([*headers, *END_TO_END]) == END_TO_END


def test_every_connection_field_line_counts() -> None:
    headers = [
        (b"connection", b"x-one"),
        (b"x-one", b"1"),
        (b"connection", b"x-two"),
        (b"x-two", b"2"),
    ]
    assert end_to_end([*headers, *END_TO_END]) == END_TO_END


def test_names_are_lower_cased_and_values_kept_as_they_are() -> None:
    headers = [(b"Cache-Control", b"Max-Age=60"), (b"ETag", b'"V1"'), (b"X-Detector", b" Pixel ")]
    assert end_to_end(headers) == [
        (b"cache-control", b"Max-Age=60"),
        (b"etag", b'"V1"'),
        (b"x-detector", b" Pixel "),
    ]


def test_order_and_repeated_fields_are_kept() -> None:
    headers = [(b"link", b"</a>"), (b"te", b"trailers"), (b"via", b"1.1 a"), (b"link", b"</b>")]
    assert end_to_end(headers) == [(b"link", b"</a>"), (b"via", b"1.1 a"), (b"link", b"</b>")]


def test_extra_fields_can_be_dropped_by_name_in_any_case() -> None:
    headers = [(b"cookie", b"session=1"), (b"Authorization", b"Bearer t"), *END_TO_END]
    assert end_to_end(headers, drop=[b"Cookie", b"authorization"]) == END_TO_END


def test_end_to_end_accepts_any_iterable_and_returns_a_new_list() -> None:
    headers = [*END_TO_END, (b"te", b"trailers")]
    result = end_to_end(iter(headers))
    assert result == END_TO_END
    assert headers == [*END_TO_END, (b"te", b"trailers")]


# --- with_via ----------------------------------------------------------------------------


def test_via_is_added_when_absent() -> None:
    assert with_via(list(END_TO_END), "node-12") == [*END_TO_END, (b"via", b"1.1 node-12")]


def test_our_via_entry_goes_after_the_existing_ones() -> None:
    headers = [(b"via", b"1.1 origin"), *END_TO_END]
    assert with_via(headers, "node-12") == [*END_TO_END, (b"via", b"1.1 origin, 1.1 node-12")]


def test_several_via_lines_are_merged_in_order_before_ours() -> None:
    headers = [(b"via", b"1.1 a, 1.1 b"), (b"etag", b'"v1"'), (b"via", b"1.0 c")]
    assert with_via(headers, "site") == [
        (b"etag", b'"v1"'),
        (b"via", b"1.1 a, 1.1 b, 1.0 c, 1.1 site"),
    ]


def test_with_via_leaves_its_input_alone() -> None:
    headers = [(b"via", b"1.1 origin")]
    with_via(headers, "node")
    assert headers == [(b"via", b"1.1 origin")]


# --- lookup ------------------------------------------------------------------------------


def test_get_first_returns_the_first_value_or_none() -> None:
    headers = [(b"link", b"</a>"), (b"link", b"</b>")]
    assert get_first(headers, b"link") == b"</a>"
    assert get_first(headers, b"etag") is None


def test_get_all_returns_every_value_in_order() -> None:
    headers = [(b"link", b"</a>"), (b"etag", b'"v1"'), (b"link", b"</b>")]
    assert get_all(headers, b"link") == [b"</a>", b"</b>"]
    assert get_all(headers, b"vary") == []


def test_an_empty_value_is_a_value() -> None:
    assert get_first([(b"vary", b"")], b"vary") == b""
