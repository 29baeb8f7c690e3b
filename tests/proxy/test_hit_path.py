"""The hit path's handling of a plain miss (`proxy.hits.HitPath.watch`), driven without sockets
the way `proxy.protocol` drives it: the first request's head starts the shared fetch at once
(no ASGI cycle of its own), later ones join it, the leader gets the fetch's own answer and the
others the collapsed one; with a shared tier the fetch is left to the engine, which asks that
tier first. The same with real processes: `tests/integration/test_hit_protocol.py`."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Iterable
from typing import Any

import httpx
from support.inprocess import InProcessUpstream
from support.origin import FakeClock
from support.scripted import Answer, ScriptedOrigin
from uvicorn.config import Config
from uvicorn.server import ServerState

from proxy.app import ProxyApp, create_app
from proxy.hits import Watched
from proxy.protocol import HitProtocol
from proxy.settings import ProxySettings
from proxy.storage.memory import MemoryStore
from proxy.storage.tiered import TieredStore

UPSTREAM = "http://origin.test"
HEADERS = [(b"host", b"node.test"), (b"user-agent", b"hlt")]


def _app(origin: ScriptedOrigin, *, shared_tier: bool = False) -> ProxyApp:
    client = httpx.AsyncClient(mounts={UPSTREAM: httpx.ASGITransport(app=origin)})  # type: ignore[arg-type]
    clock = FakeClock()
    store = None
    if shared_tier:  # a second tier (any store): a miss must ask it before going upstream
        store = TieredStore(MemoryStore(1 << 20), MemoryStore(1 << 20), clock=clock)
    settings = ProxySettings(name="node", upstreams=(UPSTREAM,))
    return create_app(settings, store=store, upstream_client=InProcessUpstream(client), clock=clock)


def _fresh(body: bytes) -> Answer:
    return Answer(200, {"cache-control": "max-age=60", "content-type": "text/plain"}, body)


def test_the_first_head_of_a_miss_starts_the_fetch_and_the_others_join_it() -> None:
    origin = ScriptedOrigin()
    origin.script("/run/500", _fresh(b"conditions"))

    async def scenario() -> None:
        app = _app(origin)
        hits = app.hits
        led = hits.watch(b"GET", b"/run/500", HEADERS, None)
        assert isinstance(led, Watched) and led.leads and led.note == {}
        joined = hits.watch(b"GET", b"/run/500", HEADERS, None)
        assert isinstance(joined, Watched) and not joined.leads
        assert joined.result is led.result  # one flight
        await asyncio.wait_for(asyncio.shield(led.result), 5)
        assert origin.count("/run/500") == 1
        assert led.note is not None and led.note["upstream"] == UPSTREAM  # for the access log

        own = hits.answer_waited(
            b"/run/500", HEADERS, False, hits.settled(led), time.perf_counter()
        )
        other = hits.answer_waited(
            b"/run/500", HEADERS, False, hits.settled(joined), time.perf_counter()
        )
        assert own is not None and other is not None
        assert own[1] == other[1] == b"conditions"
        assert b"cache-status: node; fwd=miss; fwd-status=200; stored\r\n" in own[0]
        assert b"cache-status: node; fwd=miss; fwd-status=200; stored; collapsed\r\n" in other[0]
        assert (app.tally.fast_led, app.tally.fast_collapsed) == (1, 1)
        assert app.tally.counts["miss"] == 1 and app.tally.counts["collapsed"] == 1
        await app.engine.close()

    asyncio.run(scenario())


def test_directives_a_stored_entry_or_the_feed_are_not_led_below_asgi() -> None:
    origin = ScriptedOrigin()
    origin.script("/a", _fresh(b"a"))

    async def scenario() -> None:
        app = _app(origin)
        hits = app.hits
        asked = [*HEADERS, (b"cache-control", b"no-cache")]
        assert hits.watch(b"GET", b"/a", asked, None) is None  # the engine decides
        led = hits.watch(b"GET", b"/a", HEADERS, None)
        assert isinstance(led, Watched)
        await asyncio.wait_for(asyncio.shield(led.result), 5)
        assert hits.watch(b"GET", b"/a", HEADERS, None) is None  # stored: a hit, not a wait
        assert hits.watch(b"GET", b"/_outpost/healthz", HEADERS, None) is None
        for feed in (b"/v1/changes?after=3", b"/v1/chang%65s?after=3", b"/v1/changes"):
            assert hits.watch(b"GET", feed, HEADERS, None) is None  # the proxy's own feed
        assert origin.count("/a") == 1
        await app.engine.close()

    asyncio.run(scenario())


def test_with_a_shared_tier_the_miss_is_reserved_for_the_engine_to_lead() -> None:
    origin = ScriptedOrigin()
    origin.script("/a", _fresh(b"a"))

    async def scenario() -> None:
        app = _app(origin, shared_tier=True)
        reserved = app.hits.watch(b"GET", b"/a", HEADERS, None)
        assert reserved == "/a"  # its ASGI cycle leads, through `Engine.resolve`
        await asyncio.sleep(0.05)
        assert origin.count("/a") == 0  # nothing started below ASGI
        app.hits.release(reserved)
        await app.engine.close()

    asyncio.run(scenario())


class _Socketless(asyncio.Transport):
    """What `HitProtocol` writes, kept; the connection's addresses, fixed."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def writelines(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        for chunk in chunks:
            self.written += chunk

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8081)}.get(
            name, default
        )

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def test_a_closed_connection_is_freed_without_the_cycle_collector() -> None:
    """A reference cycle per request (the protocol and uvicorn's cycle, the cycle and its
    scope) leaves every object of the connection for the cycle collector, whose pauses then
    land in the middle of a burst (`outpost.runtime`). Each kind of request, once its
    connection is closed, must be freed by reference counting alone."""
    origin = ScriptedOrigin()
    origin.script("/run/0", _fresh(b"conditions"))
    origin.script("/run/1", _fresh(b"conditions"))
    plain = b"Host: node.test\r\nUser-Agent: hlt\r\n\r\n"
    kinds = {  # in this order: the gate admits a client on its first request, through ASGI
        "through ASGI": b"GET /run/0 HTTP/1.1\r\n" + plain,
        "leads a miss below ASGI": b"GET /run/1 HTTP/1.1\r\n" + plain,
        "waits for it below ASGI": b"GET /run/1 HTTP/1.1\r\n" + plain,
        "a hit below ASGI": b"GET /run/1 HTTP/1.1\r\n" + plain,
    }

    async def scenario() -> dict[str, bool]:
        app = _app(origin)
        config = Config(app=app, http=HitProtocol, access_log=False, log_level="warning")
        config.load()
        state = ServerState()
        open_: dict[str, tuple[HitProtocol, _Socketless]] = {}
        for kind, request in kinds.items():
            protocol = HitProtocol(config=config, server_state=state, app_state={})
            transport = _Socketless()
            protocol.connection_made(transport)
            protocol.data_received(request)
            open_[kind] = (protocol, transport)
            if kind != "leads a miss below ASGI":  # the leader's fetch is joined, not done
                for _ in range(500):
                    if all(t.written.endswith(b"conditions") for _, t in open_.values()):
                        break
                    await asyncio.sleep(0.01)
        while state.tasks:  # the ASGI cycle's task ends
            await asyncio.sleep(0.01)
        assert (origin.count("/run/0"), origin.count("/run/1")) == (1, 1)
        assert (app.tally.fast_led, app.tally.fast_collapsed) == (1, 1)  # both below ASGI
        assert b"cache-status: node; hit;" in open_["a hit below ASGI"][1].written
        freed: dict[str, bool] = {}
        for kind in list(open_):
            protocol, transport = open_.pop(kind)
            assert transport.written.startswith(b"HTTP/1.1 200 OK\r\n"), kind
            gone = [weakref.ref(protocol)]
            if protocol.cycle is not None:  # the request's cycle, and its scope with it
                gone.append(weakref.ref(protocol.cycle))
            protocol.connection_lost(None)
            del protocol, transport
            freed[kind] = all(ref() is None for ref in gone)
        await app.engine.close()
        return freed

    gc.collect()
    gc.disable()
    try:
        freed = asyncio.run(scenario())
    finally:
        gc.enable()
    assert freed == dict.fromkeys(kinds, True)
