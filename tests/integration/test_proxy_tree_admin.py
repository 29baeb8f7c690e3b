"""The tree's control plane with real processes: big fan-outs, restarts, worker processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
from support.servers import free_port, redis_server, run_process
from support.stack import REGISTER_TOKEN, RUN_CONTROL_TOKEN, Server, Stack

from origin.sample import HLT_GLOBAL_TAG

RESOLVE = f"/v1/resolve/{HLT_GLOBAL_TAG}?run=500"
AUTH = {"authorization": f"Bearer {RUN_CONTROL_TOKEN}"}
SUPPORT = Path(__file__).parents[1] / "support"


def flush(proxy: Server, run: int) -> dict[str, object]:
    answer = httpx.post(f"{proxy.url}/_outpost/flush", json={"run": run}, headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    result: dict[str, object] = answer.json()
    return result


def test_a_flush_reaches_2000_registered_children(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    origin = stack.origin(sample_sqlite)
    site = stack.proxy("site", [origin.url])
    port = free_port()
    children = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(SUPPORT),
        "acker:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    ]
    stack.stack.enter_context(run_process(command, tmp_path / "acker.log", f"{children}/healthz"))

    register = {"authorization": f"Bearer {REGISTER_TOKEN}"}
    with httpx.Client(base_url=site.url, headers=register, timeout=30) as client:
        for index in range(2000):
            body = {"name": f"node-{index:04d}", "url": f"{children}/node-{index:04d}"}
            assert client.post("/_outpost/register", json=body).status_code == 200
    answer = flush(site, 5)
    assert answer["acked"] == 2001
    assert answer["failed"] == []
    assert httpx.get(f"{children}/_outpost/count").json()["flush"] == 2000


def test_a_child_registers_again_after_its_parent_restarts(
    stack: Stack, sample_sqlite: str
) -> None:
    origin = stack.origin(sample_sqlite)
    port = free_port()
    site = stack.proxy("site", [origin.url], port=port)
    fast = {"OUTPOST_PROXY_HEARTBEAT_SECONDS": "0.3"}
    stack.proxy("node-1", [site.url, origin.url], parent=site.url, env=fast)
    assert _wait_until(lambda: flush(site, 1)["acked"] == 2)
    site.kill()
    restarted = stack.proxy("site-again", [origin.url], port=port)
    assert _wait_until(lambda: flush(restarted, 2)["acked"] == 2)


def test_a_child_that_missed_a_flush_adopts_the_epoch_from_its_parent(
    stack: Stack, sample_sqlite: str
) -> None:
    origin = stack.origin(sample_sqlite)
    site = stack.proxy("site", [origin.url])
    node = stack.proxy("node-1", [site.url], env={"OUTPOST_PROXY_HEARTBEAT_SECONDS": "0.3"})
    httpx.get(node.url + RESOLVE)
    epoch = flush(site, 3)["epoch"]  # node-1 is not registered: it misses the flush
    other = httpx.get(f"{node.url}/v1/resolve/{HLT_GLOBAL_TAG}?run=4")
    assert other.headers["outpost-epoch"] == str(epoch)
    assert "detail=epoch" in httpx.get(node.url + RESOLVE).headers["cache-status"]


def test_a_flush_reaches_every_worker_process(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    origin = stack.origin(sample_sqlite)
    proxy = stack.proxy(
        "site", [origin.url], extra=("--workers", "2", "--state-dir", str(tmp_path / "state"))
    )
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        for _ in range(20):  # new connections land on both workers
            client.get(RESOLVE, headers={"connection": "close"})
        epoch = flush(proxy, 8)["epoch"]
        epochs = {
            client.get(RESOLVE, headers={"connection": "close"}).headers["outpost-epoch"]
            for _ in range(20)
        }
    assert epochs == {str(epoch)}


def test_the_shared_tier_comes_back_after_redis_restarts(stack: Stack, sample_sqlite: str) -> None:
    with redis_server() as redis:
        origin = stack.origin(sample_sqlite)
        env = {"OUTPOST_PROXY_REDIS_RETRY_SECONDS": "0.2"}
        site = stack.proxy("site-a", [origin.url], redis=redis, env=env)
        import redis as redis_client

        server = redis_client.Redis.from_url(redis)
        server.config_set("requirepass", "locked-out")  # Redis refuses the proxy: L2 is "down"
        server.client_kill_filter(_type="normal", skipme=True)
        httpx.get(site.url + RESOLVE)
        assert site.metric("outpost_proxy_shared_store_errors_total") >= 1
        server = redis_client.Redis.from_url(redis, password="locked-out")
        server.config_set("requirepass", "")
        server.close()
        time.sleep(0.3)
        assert httpx.get(f"{site.url}/v1/resolve/{HLT_GLOBAL_TAG}?run=9").status_code == 200
        keys = redis_client.Redis.from_url(redis).keys("outpost:*")
        assert any(b"run=9" in key for key in keys)


def _wait_until(condition: object, timeout: float = 15) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_site_proxy_that_restarts_takes_the_sites_epoch_from_redis(
    stack: Stack, sample_sqlite: str
) -> None:
    with redis_server() as redis:
        origin = stack.origin(sample_sqlite)
        port = free_port()
        site = stack.proxy("site", [origin.url], redis=redis, port=port)
        httpx.get(site.url + RESOLVE)
        epoch = flush(site, 11)["epoch"]
        site.kill()
        again = stack.proxy("site-again", [origin.url], redis=redis, port=port)
        assert httpx.get(f"{again.url}/_outpost/status").json()["epoch"] == epoch
        shared = httpx.get(again.url + RESOLVE)  # stored before the flush: revalidated
        assert "detail=epoch" in shared.headers["cache-status"]
