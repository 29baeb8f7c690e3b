"""The cache key and the target a shared fetch sends upstream are one function of the same bytes.

Whatever a client puts in its request target, the answer the proxy stores under a key is the
upstream's answer to that very key: the target sent upstream (the key) canonicalises to itself,
is printable ASCII, and a target is only ever keyed like another when both are spellings of one
Outpost read. (The report: `Frontier%2Ftype=…` was keyed as the decoded Frontier URL but sent
raw, and the servlet's "no query" error replaced the good answer for everyone.)
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from outpost.errors import BadRequest
from outpost.urls import parse
from proxy.core.keys import primary_key

FRONTIER = "/outpost/Frontier/type=frontier_request:1:DEFAULT&encoding=BLOBzip5&p1=eNpzdQ0K"

pieces = st.sampled_from(
    [
        "/",
        "%2F",
        "%2f",
        "%252F",
        "%",
        "%0d%0a",
        "%00",
        "%7f",
        "%20",
        " ",
        "\r\n",
        "\x00",
        "?",
        "&",
        "=",
        "+",
        "#",
        "..",
        "v1",
        "resolve",
        "GT",
        "run=5",
        "run=05",
        "lumi=1",
        "payloads",
        "ab" * 32,
        "AB" * 32,
        "Frontier",
        "outpost",
        "type=x",
        "p1=eNpz",
        "é",
        "globaltags",
        "tags",
        "iovs",
        "since=1",
        "until=9",
        "%2B5",
    ]
)
targets = st.lists(pieces, max_size=12).map(lambda parts: "/" + "".join(parts))


def key_of(target: str) -> str:
    path, _, query = target.partition("?")
    return primary_key(path, query)


@given(targets)
@example(FRONTIER.replace("Frontier/type", "Frontier%2Ftype"))
@example("/v1/globaltags%0d%0aX-Injected:%20yes")
def test_the_target_sent_upstream_keys_to_itself(target: str) -> None:
    try:
        key = key_of(target)
    except BadRequest:
        return
    assert key.isascii() and key.isprintable() and " " not in key
    assert key_of(key) == key  # what goes upstream is stored under its own key


@given(targets, targets)
def test_two_targets_share_a_key_only_as_spellings_of_one_read(a: str, b: str) -> None:
    try:
        key_a, key_b = key_of(a), key_of(b)
    except BadRequest:
        return
    if key_a == key_b and a.removesuffix("?") != b.removesuffix("?"):  # `?` + nothing: none
        (path_a, _, query_a), (path_b, _, query_b) = a.partition("?"), b.partition("?")
        assert parse(unquote(path_a), query_a) == parse(unquote(path_b), query_b)


@pytest.mark.parametrize("separator", ["%2F", "%2f", "%252F"])
def test_an_escaped_separator_never_keys_as_the_frontier_url(separator: str) -> None:
    spoof = FRONTIER.replace("Frontier/type", f"Frontier{separator}type")
    assert key_of(spoof) == spoof != key_of(FRONTIER)


@pytest.mark.parametrize(
    "target",
    [
        "/v1/globaltags%0d%0aX-Injected:%20yes",
        "/a%00b",
        "/a%7Fb",
        "/v1/resolve/GT\r\n?run=1",
        "/caf\u00e9",
        "/a b",
    ],
)
def test_targets_no_upstream_should_see_are_refused(target: str) -> None:
    with pytest.raises(BadRequest) as refused:
        key_of(target)
    assert len(refused.value.body()) < 1000
