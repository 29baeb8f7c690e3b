"""Integers in read URLs have one spelling per value, so no two URLs for one answer split a
cache. The URL codec reads `run`, `since`, `limit`... as ASCII digits and renders plain decimal;
a `/v1/query` filter on an integer column is accepted only in its canonical spelling (what
`str(int)` gives), since the codec keeps filter values as text. Pure: the statement is built,
never run."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from origin.query.table import default_table_access
from outpost.errors import BadRequest
from outpost.urls import INT64_MAX, TableQuery, parse

ACCESS = default_table_access()
# ASCII, full-width, Arabic-Indic and superscript digits: int() takes all but the last
DIGITS = "0123456789" + "".join(map(chr, [*range(0xFF10, 0xFF1A), *range(0x660, 0x66A), 0xB2]))
FULL_WIDTH_ONE = chr(0xFF11)


def bound_values(url: str) -> list[object]:
    """The parameters the filters of `url` bind, or BadRequest."""
    path, _, query = url.partition("?")
    parsed = parse(path, query)
    assert isinstance(parsed, TableQuery)
    params = ACCESS.answer_statement(parsed).compile().params
    return [v for k, v in sorted(params.items()) if k != "limit"]


@pytest.mark.parametrize(
    "spelling",
    ["%EF%BC%91", "1_000", "%201", "1%20", "01", "%2B1", "-0", "00", "1e3", "0x1", "%C2%B2"],
)
@pytest.mark.parametrize("form", ["since=gt.{}", "channel=eq.{}", "since=in.(1,{})"])
def test_a_second_spelling_of_an_integer_filter_is_refused(spelling: str, form: str) -> None:
    with pytest.raises(BadRequest) as raised:
        bound_values("/v1/query/iovs?" + form.format(spelling))
    assert raised.value.accepted


spellings = st.one_of(
    st.integers(-(2**64), 2**64).map(str),
    st.text(DIGITS + "-+_ .e", min_size=1, max_size=22),
    st.builds(lambda n, z: "0" * z + str(n), st.integers(0, 10**6), st.integers(1, 3)),
)


@settings(max_examples=500, deadline=None)
@given(spellings, st.sampled_from(["since", "channel", "id"]), st.sampled_from(["eq", "lt", "ge"]))
@example(FULL_WIDTH_ONE, "since", "gt")
@example("1_000", "since", "gt")
@example(" 1", "since", "gt")
def test_an_accepted_integer_filter_is_the_only_spelling_of_its_value(
    text: str, column: str, op: str
) -> None:
    url = f"/v1/query/iovs?{column}={op}.{quote(text, safe='')}"
    try:
        (value,) = bound_values(url)
    except BadRequest:
        return
    assert isinstance(value, int) and -INT64_MAX - 1 <= value <= INT64_MAX
    assert text == str(value)  # the one spelling: any other is refused above
    path, _, query = url.partition("?")
    canonical = parse(path, query).url()
    again_path, _, again_query = canonical.partition("?")
    assert parse(again_path, again_query) == parse(path, query)
    assert bound_values(canonical) == [value]
