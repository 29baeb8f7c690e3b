"""Error bodies are bounded whatever the client sent: `OutpostError` clips its detail and every
string and list in `accepted`, so no origin or proxy error echoes a request back in full."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from outpost.errors import (
    DETAIL_LIMIT,
    ECHO_LIMIT,
    ITEMS_LIMIT,
    BadGateway,
    BadRequest,
    NotFound,
    OutpostError,
    clip,
    echo,
)

BODY_BOUND = DETAIL_LIMIT + (ITEMS_LIMIT + 1) * (ECHO_LIMIT * 3 + 10) + 200

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=1000),
    lambda inner: st.lists(inner, max_size=150) | st.dictionaries(st.text(max_size=300), inner),
    max_leaves=300,
)


@settings(max_examples=60, deadline=None)
@given(detail=st.text(max_size=20_000), accepted=JSONISH)
def test_any_error_body_is_bounded_and_valid_json(detail: str, accepted: Any) -> None:
    for kind in (OutpostError, BadRequest, NotFound, BadGateway):
        body = kind(detail, accepted=accepted).body()
        assert len(body.decode()) <= BODY_BOUND
        document = orjson.loads(body)
        assert len(document["detail"]) <= DETAIL_LIMIT


def test_a_five_megabyte_value_is_echoed_as_a_short_prefix_with_an_ellipsis() -> None:
    huge = "9" * 5_000_000
    error = BadRequest(f"since={huge} is not an integer", accepted=[huge, {"since": huge}])
    document = orjson.loads(error.body())
    assert document["detail"].startswith("since=999") and document["detail"].endswith("…")
    assert len(document["detail"]) == DETAIL_LIMIT
    first, mapping = document["accepted"]
    assert first == "9" * (ECHO_LIMIT - 1) + "…" and mapping == {"since": first}


def test_short_text_is_left_alone() -> None:
    error = NotFound("no such tag 'x'", accepted=["a", "b"])
    assert orjson.loads(error.body()) == {
        "error": "not found",
        "detail": "no such tag 'x'",
        "accepted": ["a", "b"],
    }


@pytest.mark.parametrize(
    "value", ["x" * 10_000_000, ["x" * 1000] * 100_000, {"k" * 1000: list(range(10**5))}]
)
def test_echo_is_a_bounded_repr_however_large_the_value(value: Any) -> None:
    shown = echo(value)
    assert len(shown) <= ECHO_LIMIT and shown[:2] in ("'x", "['", "{'")


def test_clip_marks_the_cut() -> None:
    assert clip("abc", 3) == "abc" and clip("abcd", 3) == "ab…"
