"""The hit path's rule (`fresh_hit` for a `plain_request`) against the whole of `lookup`.

`proxy.hits` answers most requests with `fresh_hit` alone, below ASGI or before the engine;
these properties say it never serves what `lookup` would not, and never sends to the engine
what `lookup` would serve as a plain hit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.core import entry as entry_module
from proxy.core.directives import CacheControl, parse_cache_control
from proxy.core.entry import Entry
from proxy.core.policy import Lookup, Verdict, fresh_hit, lookup, plain_request

SECOND = 1_000_000
NOW = 1_800_000_000 * SECOND

response_directives = st.lists(
    st.sampled_from(
        [
            "max-age=0",
            "max-age=1",
            "max-age=60",
            "s-maxage=30",
            "no-cache",
            "must-revalidate",
            "immutable",
            "public",
            "stale-while-revalidate=30",
            "stale-if-error=60",
        ]
    ),
    max_size=4,
)
request_directives = st.lists(
    st.sampled_from(
        [
            "max-stale",
            "max-stale=1",
            "max-stale=100",
            "only-if-cached",
            "max-age=0",
            "max-age=10",
            "min-fresh=5",
            "no-cache",
            "x-extension=1",
        ]
    ),
    max_size=3,
)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    fields = [(b"cache-control", ", ".join(draw(response_directives)).encode())]
    if draw(st.booleans()):
        fields.append((b"age", b"%d" % draw(st.integers(0, 120))))
    epoch = draw(st.integers(0, 3))
    return entry_module.make_entry(200, fields, b"body", NOW, NOW, epoch)


@given(
    entries(),
    request_directives,
    st.integers(0, 200 * SECOND),
    st.integers(0, 3),
)
def test_the_hit_path_serves_only_what_lookup_calls_a_hit(
    entry: Entry, asked: list[str], elapsed: int, epoch: int
) -> None:
    request = parse_cache_control(", ".join(asked).encode())
    verdict = lookup("GET", request, entry, NOW + elapsed, epoch)
    if plain_request(request) and fresh_hit(entry, NOW + elapsed, epoch):
        assert verdict == Lookup(Verdict.HIT)


@given(entries(), st.integers(0, 200 * SECOND), st.integers(0, 3))
def test_a_request_without_directives_is_a_hit_exactly_when_the_rule_says_so(
    entry: Entry, elapsed: int, epoch: int
) -> None:
    verdict = lookup("GET", CacheControl(), entry, NOW + elapsed, epoch)
    assert (verdict == Lookup(Verdict.HIT)) == fresh_hit(entry, NOW + elapsed, epoch)


def test_only_directives_that_cannot_turn_an_entry_away_are_plain() -> None:
    for value in ("", "max-stale=1", "max-stale", "only-if-cached", "x-ext=1, max-stale=1"):
        assert plain_request(parse_cache_control(value.encode())), value
    for value in ("max-age=0", "no-cache", "min-fresh=1", "no-store", "max-age=100"):
        assert not plain_request(parse_cache_control(value.encode())), value
