"""`proxy.flights`: one fetch per key, every wait for it, and relayed bodies, without sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from outpost.errors import GatewayTimeout
from proxy.core import entry as entry_module
from proxy.core.directives import CacheControl
from proxy.core.keys import variant_key
from proxy.core.results import Fwd
from proxy.flights import Flights, Outcome, Relay, RelayBroken, Request

ANSWER = Outcome(fwd=Fwd.MISS, stored=True)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def flights(timeout: float = 5.0) -> tuple[Flights, list[int]]:
    waits: list[int] = []
    table = Flights(timeout=timeout, upstreams=["http://up"], on_wait=lambda: waits.append(1))
    return table, waits


def test_one_fetch_answers_every_request_for_its_key() -> None:
    async def test() -> None:
        table, waits = flights()
        calls = 0
        gate = asyncio.Event()

        async def fetch(result: asyncio.Future[Outcome]) -> Outcome:
            nonlocal calls
            calls += 1
            await gate.wait()
            return ANSWER

        joined = [asyncio.create_task(table.join("k", Fwd.MISS, fetch)) for _ in range(20)]
        await asyncio.sleep(0.01)
        gate.set()
        outcomes = await asyncio.gather(*joined)
        assert calls == 1 and len(waits) == 19
        assert [o.collapsed for o in outcomes].count(False) == 1  # the leader's own
        assert all(o.stored for o in outcomes)
        assert len(table) == 0  # landed: the next request starts a new fetch

    run(test)


def test_a_wait_is_bounded_and_the_fetch_goes_on() -> None:
    async def test() -> None:
        table, _ = flights(timeout=0.05)
        finished = asyncio.Event()

        async def fetch(result: asyncio.Future[Outcome]) -> Outcome:
            await asyncio.sleep(0.2)
            finished.set()
            return ANSWER

        outcome = await table.join("k", Fwd.MISS, fetch)
        assert isinstance(outcome.error, GatewayTimeout)
        await asyncio.wait_for(finished.wait(), 1)

    run(test)


@pytest.mark.parametrize(
    ("failure", "detail"), [(RuntimeError("boom"), "internal error"), (None, "fetch cancelled")]
)
def test_a_fetch_that_fails_or_is_cancelled_still_answers_its_waiters(
    failure: Exception | None, detail: str
) -> None:
    async def test() -> None:
        table, _ = flights()

        async def fetch(result: asyncio.Future[Outcome]) -> Outcome:
            if failure is not None:
                raise failure
            await asyncio.sleep(10)
            return ANSWER

        waiting = asyncio.create_task(table.join("k", Fwd.MISS, fetch))
        await asyncio.sleep(0.01)
        if failure is None:
            await table.close()
        outcome = await waiting
        assert outcome.error is not None and detail in str(outcome.error.body())

    run(test)


def test_a_watcher_below_asgi_waits_for_the_same_fetch_and_never_starts_one() -> None:
    async def test() -> None:
        table, waits = flights()
        assert table.watch("k") is None
        gate = asyncio.Event()

        async def fetch(result: asyncio.Future[Outcome]) -> Outcome:
            await gate.wait()
            return ANSWER

        leader = asyncio.create_task(table.join("k", Fwd.MISS, fetch))
        await asyncio.sleep(0.01)
        watched = table.watch("k")
        assert watched is not None and len(waits) == 1
        assert isinstance(table.settled(watched).error, GatewayTimeout)  # not landed yet
        gate.set()
        await leader
        settled = table.settled(watched)
        assert settled.stored and settled.collapsed

    run(test)


def test_an_outcome_handed_over_early_reaches_waiters_before_the_fetch_ends() -> None:
    async def test() -> None:
        table, _ = flights()
        body_done = asyncio.Event()

        async def fetch(result: asyncio.Future[Outcome]) -> Outcome:
            early = Outcome(relay=Relay(200, [], 3))
            result.set_result(early)
            await body_done.wait()
            return early

        first = await table.join("k", Fwd.MISS, fetch)
        assert first.relay is not None and len(table) == 1  # still in flight
        second = await table.join("k", Fwd.MISS, fetch)  # joins the same flight
        assert second.relay is first.relay and second.collapsed
        body_done.set()
        await asyncio.sleep(0.01)
        assert len(table) == 0

    run(test)


async def read(relay: Relay) -> list[bytes]:
    return [chunk async for chunk in relay.chunks()]


def test_a_relay_holds_back_only_the_bytes_that_complete_it_until_it_is_finished() -> None:
    async def test() -> None:
        relay = Relay(200, [], 6)
        seen: list[bytes] = []

        async def reader() -> None:
            async for chunk in relay.chunks():
                seen.append(chunk)

        task = asyncio.create_task(reader())
        relay.feed(b"ab")
        relay.feed(b"cd")
        await asyncio.sleep(0.01)
        assert b"".join(seen) == b"abcd"  # bytes go on as they arrive
        relay.feed(b"ef")
        await asyncio.sleep(0.01)
        assert b"".join(seen) == b"abcd"  # these complete it: they wait for the check
        relay.finish()
        await task
        assert b"".join(seen) == b"abcdef"
        assert b"".join(await read(relay)) == b"abcdef"  # a late reader gets it all

    run(test)


def test_waiting_readers_have_the_last_bytes_one_loop_turn_after_the_finish() -> None:
    """The fetch yields once after `finish` before it joins the body to store it (milliseconds
    for a large one): by then every waiting reader must hold the last chunk, or each tier of a
    tree adds a join to the time to last byte."""

    async def test() -> None:
        relay = Relay(200, [], 4)
        seen: list[list[bytes]] = [[], [], []]

        async def reader(into: list[bytes]) -> None:
            async for chunk in relay.chunks():
                into.append(chunk)

        tasks = [asyncio.create_task(reader(into)) for into in seen]
        relay.feed(b"ab")
        await asyncio.sleep(0.01)
        relay.feed(b"cd")
        relay.finish()
        await asyncio.sleep(0)  # what `Engine._relay` does before it joins
        assert [b"".join(into) for into in seen] == [b"abcd"] * 3
        await asyncio.gather(*tasks)

    run(test)


def test_a_reader_busy_sending_when_the_relay_completes_still_gets_every_byte() -> None:
    """A slow client: its reader is suspended in a send while the rest arrives and the relay
    is finished; it must then send the rest, not stop at what it had counted before."""

    async def test() -> None:
        relay = Relay(200, [], 8)
        sending = asyncio.Event()
        sent = asyncio.Event()
        seen: list[bytes] = []

        async def slow_reader() -> None:
            async for chunk in relay.chunks():
                seen.append(chunk)
                if len(seen) == 1:
                    sending.set()
                    await sent.wait()  # a send to a slow socket

        relay.feed(b"ab")
        task = asyncio.create_task(slow_reader())
        await sending.wait()
        relay.feed(b"cd")
        relay.feed(b"ef")
        relay.feed(b"gh")
        relay.finish()
        sent.set()
        await asyncio.wait_for(task, 1)
        assert b"".join(seen) == b"abcdefgh"

    run(test)


def test_a_failed_relay_ends_every_reader_with_an_error() -> None:
    async def test() -> None:
        relay = Relay(200, [], 100)
        readers = [asyncio.create_task(read(relay)) for _ in range(3)]
        relay.feed(b"x" * 10)
        relay.feed(b"y" * 10)
        await asyncio.sleep(0.01)
        relay.fail("sha-256 mismatch")
        for reader in readers:
            with pytest.raises(RelayBroken, match="sha-256 mismatch"):
                await reader

    run(test)


def test_a_reader_that_leaves_does_not_stop_the_others() -> None:
    async def test() -> None:
        relay = Relay(200, [], 4)
        leaving = asyncio.create_task(read(relay))
        staying = asyncio.create_task(read(relay))
        relay.feed(b"ab")
        await asyncio.sleep(0.01)
        leaving.cancel()
        await asyncio.sleep(0.01)
        relay.feed(b"cd")
        relay.finish()
        assert b"".join(await staying) == b"abcd"

    run(test)


def test_a_varied_answer_suits_only_the_waiters_that_select_its_variant() -> None:
    fields = [(b"cache-control", b"max-age=60"), (b"vary", b"accept-encoding")]
    entry = entry_module.make_entry(200, fields, b"gz", 0, 0, 0)
    gzip_request = Request("GET", "/a", [(b"accept-encoding", b"gzip")], CacheControl())
    plain_request = Request("GET", "/a", [], CacheControl())
    stored_as = variant_key("/a", entry.vary, gzip_request.headers)
    outcome = Outcome(entry=entry, variant=stored_as)
    assert Flights.suits(gzip_request, outcome)
    assert not Flights.suits(plain_request, outcome)
    assert Flights.suits(plain_request, Outcome(entry=None))


def test_every_waiter_is_counted() -> None:
    async def test() -> None:
        table, waits = flights()

        async def fetch(result: asyncio.Future[Outcome]) -> Outcome:
            await asyncio.sleep(0.01)
            return ANSWER

        await asyncio.gather(*(table.join("k", Fwd.MISS, fetch) for _ in range(5)))
        table.start("k2", Fwd.STALE, fetch)
        table.start("k2", Fwd.STALE, fetch)  # a second stale hit starts nothing
        assert len(waits) == 4 and len(table) == 1

    run(test)
