"""What a shared fetch sends upstream: the key's target and a fixed, cleaned set of fields, so
nothing one client sends beyond them reaches an answer every client is served."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.core.directives import CacheControl, parse_cache_control
from proxy.core.shared import (
    FORWARDED_FIELDS,
    MAX_FIELD_BYTES,
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
