"""The proxy's storage adapters on their own: the codec that puts entries into the shared tier,
and the tiered store in front of a real Redis, reachable and not. The whole proxy over them:
`tests/integration/test_purge.py`, `tests/integration/test_proxy_tree_admin.py`."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.servers import free_port, redis_server

from proxy.core.entry import Entry, make_entry
from proxy.storage.base import Stored, VaryMarker
from proxy.storage.codec import decode, encode
from proxy.storage.memory import MemoryStore
from proxy.storage.redis import RedisStore
from proxy.storage.tiered import TieredStore

SECRET = b"site-shared-tier-key"
SECOND = 1_000_000  # the stores' clock counts microseconds

tokens = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20)
field_values = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)
times = st.integers(min_value=0, max_value=2**53)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    headers = draw(
        st.lists(
            st.tuples(tokens, field_values).map(lambda f: (f[0].encode(), f[1].encode("latin-1"))),
            max_size=6,
        )
    )
    entry = make_entry(
        draw(st.integers(min_value=100, max_value=599)),
        headers,
        draw(st.binary(max_size=2048)),
        draw(times),
        draw(times),
        draw(st.integers(min_value=0, max_value=2**40)),
    )
    return replace(entry, initial_age=draw(times))


markers = st.builds(
    VaryMarker,
    st.lists(tokens.map(str.encode), min_size=1, max_size=4).map(tuple),
    st.integers(min_value=0, max_value=2**53),
)


def _same(a: Stored | None, b: Stored) -> bool:
    if isinstance(b, VaryMarker):
        return a == b
    assert isinstance(a, Entry)
    fields = ("status", "headers", "body", "request_time", "response_time", "epoch")
    return all(getattr(a, f) == getattr(b, f) for f in (*fields, "initial_age"))


@given(entries() | markers)
def test_what_is_encoded_decodes_to_the_same_entry_or_marker(value: Stored) -> None:
    assert _same(decode(encode(value)), value)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_decoding_any_bytes_gives_a_value_or_none_never_an_exception(data: bytes) -> None:
    decoded = decode(data)
    assert decoded is None or isinstance(decoded, (Entry, VaryMarker))


@settings(max_examples=300)
@given(entries() | markers, st.data())
def test_a_cut_or_altered_encoding_is_read_as_a_value_or_none(
    value: Stored, data: st.DataObject
) -> None:
    """Bytes of an older or newer version, or cut short: a miss, never a 500."""
    encoded = bytearray(encode(value))
    if data.draw(st.booleans(), label="cut"):
        encoded = encoded[: data.draw(st.integers(0, len(encoded) - 1), label="at")]
    else:
        where = data.draw(st.integers(0, len(encoded) - 1), label="where")
        encoded[where] = data.draw(st.integers(0, 255), label="byte")
    decoded = decode(bytes(encoded))
    assert decoded is None or isinstance(decoded, (Entry, VaryMarker))


@pytest.mark.parametrize(
    "header",
    [
        b"{}",  # no field at all
        b'{"status": 200}',  # fields missing
        b'{"status": "200", "headers": 1, "request_time": 0, "response_time": 0, "epoch": 0,'
        b' "initial_age": 0}',  # fields of the wrong type
        b'{"status": 0, "headers": [], "request_time": 0, "response_time": 0, "epoch": 0,'
        b' "initial_age": 0}',  # no HTTP status
        b'{"vary": 3}',
        b"[]",
        b'{"status": 200, "headers": [["a\\u0100", "b"]], "request_time": 0, "response_time": 0,'
        b' "epoch": 0, "initial_age": 0}',  # not latin-1
    ],
)
def test_a_header_this_version_cannot_read_is_a_miss(header: bytes) -> None:
    assert decode(b"OP1" + len(header).to_bytes(4, "big") + header + b"body") is None


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000 * SECOND

    def __call__(self) -> int:
        return self.now


def _entry(body: bytes) -> Entry:
    return make_entry(200, [(b"cache-control", b"max-age=60")], body, 0, 0, 0)


def _unreachable_redis() -> str:
    """The URL of a Redis that is not there: a free loopback port nothing listens on."""
    return f"redis://127.0.0.1:{free_port()}/0"


def test_with_redis_unreachable_the_tiered_store_serves_from_memory_and_retries_later() -> None:
    clock = Clock()
    errors: list[int] = []

    async def scenario() -> None:
        l2 = RedisStore(_unreachable_redis(), key=SECRET, timeout=0.5)
        store = TieredStore(
            MemoryStore(1 << 20),
            l2,
            clock=clock,
            retry_after=5,
            on_l2_error=lambda: errors.append(clock.now),
        )
        await store.put("/a", _entry(b"a"), 60)  # memory has it; Redis failed once
        assert errors == [clock.now] and not store.l2_up
        found = await store.get("/a")
        assert isinstance(found, Entry) and found.body == b"a"
        assert await store.get("/b") is None  # a miss, not an error, while Redis is down
        await store.delete("/b")
        assert len(errors) == 1  # Redis is not asked again inside `retry_after`
        clock.now += 5 * SECOND
        assert store.l2_up
        assert await store.get("/b") is None  # asked again: fails again, down again
        assert len(errors) == 2 and not store.l2_up
        await l2.close()

    asyncio.run(scenario())


def test_the_tiered_store_promotes_what_redis_holds_and_writes_through() -> None:
    clock = Clock()
    errors: list[int] = []
    prepared: list[Stored] = []

    def prepare(value: Stored) -> Stored:
        prepared.append(value)
        return value

    with redis_server() as url:

        async def scenario() -> None:
            shared, own = RedisStore(url, key=SECRET), RedisStore(url, key=SECRET)
            await shared.put("/a", _entry(b"from another proxy"), 60)
            store = TieredStore(
                MemoryStore(1 << 20),
                own,
                clock=clock,
                on_l2_error=lambda: errors.append(clock.now),
                prepare=prepare,
            )
            found = await store.get("/a")
            assert isinstance(found, Entry) and found.body == b"from another proxy"
            assert store.l1.peek("/a") is found and prepared == [found]  # promoted, prepared
            await store.put("/b", _entry(b"b"), 60)
            other = await shared.get("/b")
            assert isinstance(other, Entry) and other.body == b"b"  # written through
            await store.delete("/b")
            assert await shared.get("/b") is None and store.l1.peek("/b") is None
            assert errors == []
            await shared.close()
            await own.close()

        asyncio.run(scenario())
