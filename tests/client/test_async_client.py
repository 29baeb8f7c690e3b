"""The asyncio client makes the same decisions as the blocking one (fake network, no sleeping)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pytest
from client.fakenet import (
    GT,
    NODE,
    ORIGIN,
    PAYLOADS,
    SITE,
    Clock,
    Network,
    corrupt,
    refuse,
    serve,
    status,
    time_out,
    without,
)

from outpost.client import AllEndpointsFailed, AsyncClient, ClientSettings, NotFound

T = TypeVar("T")
SETTINGS = ClientSettings(rounds=2, backoff=0.5, backoff_cap=4.0, cooldown=30.0)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def make_client(
    network: Network, clock: Clock | None = None, sleeps: list[float] | None = None, **kw: Any
) -> AsyncClient:
    async def sleep(seconds: float) -> None:
        (sleeps if sleeps is not None else []).append(seconds)

    options: dict[str, Any] = {"servers": [ORIGIN], "proxies": [NODE, SITE], **kw}
    return AsyncClient(
        settings=options.pop("settings", SETTINGS),
        transport=network.transport(),
        clock=clock or Clock(),
        sleep=sleep,
        rng=random.Random(3),
        **options,
    )


def test_fetch_run_returns_every_payload_verified(network: Network) -> None:
    async def scenario() -> None:
        async with make_client(network) as client:
            conditions = await client.fetch_run(GT, 500)
            assert dict(conditions.payloads) == PAYLOADS
            assert client.stats.served_by == {NODE: 1 + len(PAYLOADS)}

    run(scenario())
    assert network.log[0] == f"{NODE}/v1/resolve/{GT}?run=500"


def test_a_dead_node_proxy_is_skipped_until_its_cool_down_ends(network: Network) -> None:
    network.behaviours[NODE] = refuse
    clock = Clock()

    async def scenario() -> None:
        async with make_client(network, clock) as client:
            await client.fetch_run(GT, 1)
            assert network.hosts().count(NODE) == 1
            network.behaviours[NODE] = serve
            clock.now += 30
            await client.resolve(GT, 2)

    run(scenario())
    assert network.hosts()[-1] == NODE


def test_when_everything_is_down_it_backs_off_and_names_every_endpoint(network: Network) -> None:
    network.behaviours |= {NODE: time_out, SITE: status(502), ORIGIN: refuse}
    sleeps: list[float] = []

    async def scenario() -> AllEndpointsFailed:
        async with make_client(network, sleeps=sleeps) as client:
            with pytest.raises(AllEndpointsFailed) as caught:
                await client.payload(next(iter(PAYLOADS)))
            return caught.value

    error = run(scenario())
    assert error.endpoints == (NODE, SITE, ORIGIN)
    assert len(network.log) == 6 and len(sleeps) == 1


def test_an_unknown_global_tag_is_not_found_without_trying_elsewhere(network: Network) -> None:
    async def scenario() -> None:
        async with make_client(network) as client:
            with pytest.raises(NotFound, match="does not exist"):
                await client.resolve("NO_SUCH_GT", 1)

    run(scenario())
    assert network.hosts() == [NODE]


def test_corrupted_bytes_are_fetched_again_elsewhere(network: Network) -> None:
    network.behaviours[NODE] = corrupt

    async def scenario() -> None:
        async with make_client(network) as client:
            assert dict((await client.fetch_run(GT, 1)).payloads) == PAYLOADS
            assert client.stats.integrity_errors >= 1

    run(scenario())


def test_fetch_run_fetches_at_most_concurrency_payloads_at_once(network: Network) -> None:
    in_flight, most = [0], [0]

    async def slow(request: httpx.Request) -> httpx.Response:
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        await asyncio.sleep(0.01)  # lets the workers overlap; this is not a back-off
        in_flight[0] -= 1
        return serve(request)

    network.behaviours[ORIGIN] = slow  # type: ignore[assignment]

    async def scenario() -> None:
        settings = ClientSettings(concurrency=3)
        async with make_client(network, proxies=(), settings=settings) as client:
            assert dict((await client.fetch_run(GT, 1)).payloads) == PAYLOADS

    run(scenario())
    assert most[0] == 3


def test_a_failed_payload_fails_the_run_with_its_own_error_not_a_group(network: Network) -> None:
    missing = next(iter(PAYLOADS))

    network.behaviours[ORIGIN] = without(missing)

    async def scenario() -> None:
        async with make_client(network, proxies=()) as client:
            with pytest.raises(AllEndpointsFailed) as caught:  # named by resolve: it exists
                await client.fetch_run(GT, 1)
            assert caught.value.path == f"/v1/payloads/{missing}"
        assert client.closed

    run(scenario())


def test_from_env_builds_an_async_client() -> None:
    client = AsyncClient.from_env({"OUTPOST_SERVERS": ORIGIN, "OUTPOST_PROXIES": f"{NODE}"})
    assert isinstance(client, AsyncClient)
    assert [e.url for e in client.endpoints] == [NODE, ORIGIN]
    run(client.aclose())
