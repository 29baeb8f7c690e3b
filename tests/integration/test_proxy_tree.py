"""The proxy tier end to end: origin → site proxy → node proxies, real processes on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
from support.servers import free_port, outpost_command, redis_server, run_process
from support.stack import RUN_CONTROL_TOKEN, Server, Stack

from origin.sample import HLT_GLOBAL_TAG

RESOLVE = f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500"


def build_tree(stack: Stack, db: str, nodes: int = 3, redis: str | None = None) -> Stack:
    origin = stack.origin(db)
    site = stack.proxy("site", [origin.url], redis=redis)
    for index in range(1, nodes + 1):
        stack.proxy(f"node-{index}", [site.url, origin.url], parent=site.url)
    wait_for_children(site, nodes)
    return stack


def wait_for_children(parent: Server, count: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if len(httpx.get(f"{parent.url}/_outpost/status").json()["children"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{parent.name} has fewer than {count} children")


def origin_requests(origin: Server, route: str, status: str) -> float:
    return origin.metric("outpost_origin_requests_total", method="GET", route=route, status=status)


def payloads_of(answer: httpx.Response) -> list[str]:
    return [r["payload"] for r in answer.json()["records"] if r["payload"]]


def test_second_get_is_a_hit_at_the_node_and_cache_status_shows_the_chain(
    stack: Stack, sample_sqlite: str
) -> None:
    build_tree(stack, sample_sqlite)
    url = stack["node-1"].url + RESOLVE
    first, second = httpx.get(url), httpx.get(url)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first.headers["cache-status"] == (
        "site; fwd=miss; fwd-status=200; stored, node-1; fwd=miss; fwd-status=200; stored"
    )
    assert second.headers["cache-status"].startswith(
        "site; fwd=miss; fwd-status=200; stored, node-1; hit; ttl="
    )
    assert second.headers["via"] == "1.1 site, 1.1 node-1"
    other_node = httpx.get(stack["node-2"].url + RESOLVE)
    assert other_node.headers["cache-status"].startswith("site; hit; ttl=")


def test_500_concurrent_gets_of_a_cold_url_reach_the_origin_once(
    stack: Stack, sample_sqlite: str
) -> None:
    build_tree(stack, sample_sqlite, nodes=1)
    node, origin = stack["node-1"], stack["origin"]
    digest = max(httpx.get(origin.url + RESOLVE).json()["records"], key=lambda r: r["size"] or 0)[
        "payload"
    ]
    before = origin_requests(origin, "/v1/payloads", "200")

    async def storm() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=500)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            url = f"{node.url}/v1/payloads/{digest}"
            return await asyncio.gather(*(client.get(url) for _ in range(500)))

    answers = asyncio.run(storm())
    assert all(a.status_code == 200 for a in answers)
    assert {hashlib.sha256(a.content).hexdigest() for a in answers} == {digest}
    assert origin_requests(origin, "/v1/payloads", "200") - before == 1
    assert node.metric("outpost_proxy_coalesced_waiters_total") > 0


def test_flush_reaches_the_tree_and_unchanged_answers_come_back_as_304(
    stack: Stack, sample_sqlite: str
) -> None:
    build_tree(stack, sample_sqlite)
    node, origin = stack["node-1"], stack["origin"]
    resolve = httpx.get(node.url + RESOLVE)
    for digest in payloads_of(resolve):
        httpx.get(f"{node.url}/v1/payloads/{digest}")
    payloads_before = origin_requests(origin, "/v1/payloads", "200")
    revalidated_before = origin_requests(origin, "/v1/resolve", "304")

    flush = _run_cli("flush", "--run", "1001", "--proxy", stack["site"].url, "--json")
    assert flush.returncode == 0, flush.stderr
    answer = orjson.loads(flush.stdout)
    assert answer["acked"] == 4 and answer["failed"] == []

    again = httpx.get(node.url + RESOLVE)
    assert again.content == resolve.content
    assert "node-1; fwd=stale; fwd-status=304" in again.headers["cache-status"]
    assert "detail=epoch" in again.headers["cache-status"]
    assert origin_requests(origin, "/v1/resolve", "304") - revalidated_before == 1
    for digest in payloads_of(again):  # immutable: served without asking anyone
        payload = httpx.get(f"{node.url}/v1/payloads/{digest}")
        assert "node-1; hit" in payload.headers["cache-status"]
    assert origin_requests(origin, "/v1/payloads", "200") == payloads_before


def test_a_flush_names_the_children_that_did_not_acknowledge(
    stack: Stack, sample_sqlite: str
) -> None:
    build_tree(stack, sample_sqlite)
    stack["node-2"].kill()
    flush = _run_cli("flush", "--run", "7", "--proxy", stack["site"].url, "--json")
    answer = orjson.loads(flush.stdout)
    assert flush.returncode == 1
    assert answer["acked"] == 3
    assert [f["name"] for f in answer["failed"]] == ["node-2"]


def test_killing_the_site_proxy_fails_nodes_over_with_no_failed_request(
    stack: Stack, sample_sqlite: str
) -> None:
    build_tree(stack, sample_sqlite, nodes=2)
    node = stack["node-1"]
    assert httpx.get(node.url + RESOLVE).status_code == 200
    stack["site"].kill()
    for run in (1, 2, 3, 500, 999):
        answer = httpx.get(f"{node.url}/v1/resolve/{HLT_GLOBAL_TAG}?run={run}")
        assert answer.status_code == 200, answer.text
        for digest in payloads_of(answer)[:5]:
            payload = httpx.get(f"{node.url}/v1/payloads/{digest}")
            assert hashlib.sha256(payload.content).hexdigest() == digest


def test_killing_the_origin_serves_cached_answers_stale_and_errors_clearly(
    stack: Stack, sample_sqlite: str
) -> None:
    build_tree(stack, sample_sqlite, nodes=1)
    node = stack["node-1"]
    cached = httpx.get(node.url + RESOLVE)
    flushed = _run_cli("flush", "--run", "2", "--proxy", stack["site"].url, "--json")
    assert orjson.loads(flushed.stdout)["acked"] == 2
    stack["origin"].kill()

    stale = httpx.get(node.url + RESOLVE)
    assert stale.status_code == 200
    assert stale.content == cached.content
    assert stale.headers["cache-status"].startswith("site; fwd=stale; detail=stale-if-error, ")
    assert stale.headers["warning"] == '111 - "Revalidation Failed"'

    uncached = httpx.get(f"{node.url}/v1/resolve/{HLT_GLOBAL_TAG}?run=3")
    assert uncached.status_code == 502
    error = uncached.json()
    assert error["error"] == "bad gateway"
    # the site's own answer, passed on by the node: it names the upstream that is down
    assert stack["origin"].url in error["detail"]


def test_killing_redis_leaves_the_site_proxy_serving(stack: Stack, sample_sqlite: str) -> None:
    with redis_server() as redis:
        build_tree(stack, sample_sqlite, nodes=0, redis=redis)
        site = stack["site"]
        assert httpx.get(site.url + RESOLVE).status_code == 200
        redis_process_gone = _kill_redis(redis)
        assert redis_process_gone
        assert httpx.get(site.url + RESOLVE).headers["cache-status"].startswith("site; hit")
        fresh = httpx.get(f"{site.url}/v1/resolve/{HLT_GLOBAL_TAG}?run=7")
        assert fresh.status_code == 200
        assert site.metric("outpost_proxy_shared_store_errors_total") >= 1


def test_site_proxies_share_what_one_of_them_fetched_through_redis(
    stack: Stack, sample_sqlite: str
) -> None:
    with redis_server() as redis:
        origin = stack.origin(sample_sqlite)
        first = stack.proxy("site-a", [origin.url], redis=redis)
        second = stack.proxy("site-b", [origin.url], redis=redis)
        assert httpx.get(first.url + RESOLVE).status_code == 200
        before = origin_requests(origin, "/v1/resolve", "200")
        shared = httpx.get(second.url + RESOLVE)
        assert shared.status_code == 200
        assert shared.headers["cache-status"].startswith("site-b; hit")
        assert origin_requests(origin, "/v1/resolve", "200") == before


def test_a_corrupted_payload_is_rejected_and_never_served(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    origin = stack.origin(sample_sqlite)
    port = free_port()
    bad = f"http://127.0.0.1:{port}"
    support = Path(__file__).parents[1] / "support"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(support),
        "corrupt:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    stack.stack.enter_context(run_process(command, tmp_path / "bad.log", f"{bad}/_outpost/healthz"))
    node = stack.proxy("node-1", [bad, origin.url])
    digest = payloads_of(httpx.get(origin.url + RESOLVE))[0]
    for _ in range(2):
        answer = httpx.get(f"{node.url}/v1/payloads/{digest}")
        assert answer.status_code == 200
        assert hashlib.sha256(answer.content).hexdigest() == digest
    assert node.metric("outpost_proxy_upstream_errors_total", kind="integrity", upstream=bad) == 1
    only_bad = stack.proxy("node-2", [bad])
    refused = httpx.get(f"{only_bad.url}/v1/payloads/{digest}")
    assert refused.status_code == 502
    assert "hashes to" in refused.json()["detail"]


def _kill_redis(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.shutdown(nosave=True)
    except redis.exceptions.ConnectionError:
        pass
    finally:
        client.close()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.exceptions.ConnectionError:
        return True
    return False


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    import subprocess

    env = {**os.environ, "OUTPOST_RUN_CONTROL_TOKEN": RUN_CONTROL_TOKEN}
    return subprocess.run(
        outpost_command(*args), capture_output=True, text=True, env=env, timeout=60
    )
