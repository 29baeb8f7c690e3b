"""The client against real processes on loopback: origin → site proxy → node proxy → client."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path

import httpx
import pytest
from support.servers import free_port, run_process
from support.stack import Server, Stack

from origin.sample import HLT_GLOBAL_TAG
from outpost.client import (
    AllEndpointsFailed,
    AsyncClient,
    Client,
    ClientSettings,
    NotFound,
    RunConditions,
)

RUN = 500
SETTINGS = ClientSettings(timeout=10, connect_timeout=2, rounds=2, backoff=0.2)


def build_tree(stack: Stack, db: str) -> tuple[Server, Server, Server]:
    origin = stack.origin(db)
    site = stack.proxy("site", [origin.url])
    node = stack.proxy("node", [site.url, origin.url])
    return origin, site, node


def client_of(origin: Server, *proxies: Server, sleeps: list[float] | None = None) -> Client:
    return Client(
        servers=[origin.url],
        proxies=[p.url for p in proxies],
        settings=SETTINGS,
        sleep=(sleeps if sleeps is not None else []).append,
    )


def expected_payloads(origin: Server) -> set[str]:
    answer = httpx.get(f"{origin.url}/v1/resolve/{HLT_GLOBAL_TAG}?run={RUN}").json()
    return {r["payload"] for r in answer["records"] if r["payload"]}


def assert_complete(conditions: RunConditions, expected: set[str]) -> None:
    assert set(conditions.payloads) == expected
    for digest, body in conditions.payloads.items():
        assert hashlib.sha256(body).hexdigest() == digest
    for record in conditions.records:
        if record.payload is not None:
            assert record.size == len(conditions.payloads[record.payload])


def test_a_node_fetches_a_whole_run_through_its_proxies(
    stack: Stack, sample_sqlite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin, site, node = build_tree(stack, sample_sqlite)
    expected = expected_payloads(origin)
    # Outpost proxies are endpoints, not forward proxies: a squid in the environment is ignored.
    for variable in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(variable, f"http://127.0.0.1:{free_port()}")
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    with client_of(origin, node, site) as client:
        conditions = client.fetch_run(HLT_GLOBAL_TAG, RUN)
        assert_complete(conditions, expected)
        assert conditions.resolution.globaltag == HLT_GLOBAL_TAG
        assert client.stats.served_by == {node.url: 1 + len(expected)}
        assert sum(client.stats.failures.values()) == 0


def test_with_the_node_proxy_killed_the_client_fails_over_then_names_every_dead_endpoint(
    stack: Stack, sample_sqlite: str
) -> None:
    origin, site, node = build_tree(stack, sample_sqlite)
    expected = expected_payloads(origin)
    sleeps: list[float] = []
    with client_of(origin, node, site, sleeps=sleeps) as client:
        node.kill()
        assert_complete(client.fetch_run(HLT_GLOBAL_TAG, RUN), expected)
        assert client.stats.failures == {"connect": 1}  # the resolve; then node cooled down
        assert client.stats.served_by == {site.url: 1 + len(expected)}

        site.kill()
        origin.kill()
        with pytest.raises(AllEndpointsFailed) as caught:
            client.resolve(HLT_GLOBAL_TAG, RUN + 1)
    assert caught.value.endpoints == (site.url, origin.url, node.url)  # cooling ones last
    assert {a.kind for a in caught.value.attempts} == {"connect"}
    for server in (node, site, origin):
        assert server.url in str(caught.value)
    assert len(sleeps) == 1  # one back-off between the two rounds, not slept here


def test_an_unknown_global_tag_is_not_found_and_asked_only_once(
    stack: Stack, sample_sqlite: str
) -> None:
    origin, site, node = build_tree(stack, sample_sqlite)
    with client_of(origin, node, site) as client, pytest.raises(NotFound) as caught:
        client.resolve("NO_SUCH_GLOBAL_TAG", RUN)
    assert caught.value.endpoint == node.url
    assert caught.value.error == "not found"
    assert "NO_SUCH_GLOBAL_TAG" in (caught.value.detail or "")
    status_404 = {"method": "GET", "route": "/v1/resolve", "status": "404"}
    assert origin.metric("outpost_origin_requests_total", **status_404) == 1
    answered_by_site = sum(
        site.metric("outpost_proxy_requests_total", result=result)
        for result in ("hit", "miss", "stale", "revalidated", "pass", "error")
    )
    assert answered_by_site == 1  # only the node's forward, never the client directly


def test_a_corrupting_first_endpoint_is_passed_over_for_the_right_bytes(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    origin = stack.origin(sample_sqlite)
    port = free_port()
    bad = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(__file__).parents[1] / "support"),
        "corrupt:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    ready = f"{bad}/_outpost/healthz"
    stack.stack.enter_context(run_process(command, tmp_path / "bad.log", ready))
    expected = expected_payloads(origin)
    with Client(servers=[origin.url], proxies=[bad], settings=SETTINGS) as client:
        digest = sorted(expected)[0]
        assert hashlib.sha256(client.payload(digest)).hexdigest() == digest
        assert client.stats.integrity_errors == 1
        assert client.plan()[-1].url == bad  # cooling down: asked last from now on
        assert_complete(client.fetch_run(HLT_GLOBAL_TAG, RUN), expected)
        assert client.stats.integrity_errors == 1
        assert bad not in client.stats.served_by


def test_the_async_client_fetches_the_same_run(stack: Stack, sample_sqlite: str) -> None:
    origin = stack.origin(sample_sqlite)
    node = stack.proxy("node", [origin.url])
    expected = expected_payloads(origin)

    async def fetch() -> RunConditions:
        async with AsyncClient(servers=[origin.url], proxies=[node.url]) as client:
            conditions = await client.fetch_run(HLT_GLOBAL_TAG, RUN)
            assert client.stats.served_by == {node.url: 1 + len(expected)}
            return conditions

    assert_complete(asyncio.run(fetch()), expected)
    with client_of(origin) as blocking:
        assert asyncio.run(fetch()).records == blocking.resolve(HLT_GLOBAL_TAG, RUN).records
