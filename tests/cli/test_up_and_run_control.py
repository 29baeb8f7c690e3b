"""`outpost up` and the run-control commands, end to end with real processes on loopback."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from outpost.client import Client

GLOBAL_TAG = "OUTPOST_HLT_2026_V1"
TOKEN = "cli-test-token"


def outpost(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OUTPOST_RUN_CONTROL_TOKEN": TOKEN}
    command = [sys.executable, "-m", "outpost", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture
def up(tmp_path: Path, sqlite_templates: dict[bool, Path]) -> Iterator[dict[str, Any]]:
    """`outpost up --json` over a copy of the sample database; SIGTERM at the end."""
    db = tmp_path / "conditions.sqlite"
    db.write_bytes(sqlite_templates[True].read_bytes())
    env = {**os.environ, "OUTPOST_RUN_CONTROL_TOKEN": TOKEN}
    command = [
        sys.executable,
        "-m",
        "outpost",
        "up",
        "--json",
        "--nodes",
        "2",
        "--db",
        f"sqlite:///{db}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, process.stderr.read().decode() if process.stderr else "no output"
    described = orjson.loads(line)
    described["process"] = process
    try:
        yield described
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        process.stdout.close()
        if process.stderr:
            process.stderr.close()


def proxy(up: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in up["proxies"] if p["name"] == name)


def test_up_describes_every_tier_once_all_answer(up: dict[str, Any]) -> None:
    roles = sorted(p["role"] for p in up["proxies"])
    assert roles == ["node", "node", "site"]
    for url in [up["origin"], *(p["url"] for p in up["proxies"])]:
        assert httpx.get(f"{url}/_outpost/healthz").status_code == 200


def test_a_node_fetches_a_whole_run_then_fails_over_when_its_proxy_dies(up: dict[str, Any]) -> None:
    node, site = proxy(up, "node-1"), proxy(up, "site")
    with Client(servers=[up["origin"]], proxies=[node["url"], site["url"]]) as client:
        first = client.fetch_run(GLOBAL_TAG, 500)
        assert first.payloads
        for digest, data in first.payloads.items():
            assert hashlib.sha256(data).hexdigest() == digest
        os.kill(node["pid"], signal.SIGKILL)
        again = client.fetch_run(GLOBAL_TAG, 500)
    assert again.payloads == first.payloads


def test_flush_through_the_cli_reports_every_proxy_acknowledged(up: dict[str, Any]) -> None:
    answer = outpost("flush", "--run", "7", "--proxy", proxy(up, "site")["url"], "--json")
    assert answer.returncode == 0, answer.stderr
    flushed = orjson.loads(answer.stdout)
    assert flushed["acked"] == 3
    assert sorted(flushed["caches"]) == ["node-1", "node-2", "site"]
    table = outpost("flush", "--run", "8", "--proxy", proxy(up, "site")["url"])
    assert table.returncode == 0
    assert "node-2" in table.stdout and "3 acknowledged" in table.stdout


def test_flush_exits_non_zero_naming_the_cache_that_did_not_acknowledge(up: dict[str, Any]) -> None:
    os.kill(proxy(up, "node-2")["pid"], signal.SIGKILL)
    answer = outpost("flush", "--run", "9", "--proxy", proxy(up, "site")["url"], "--json")
    assert answer.returncode == 1
    flushed = orjson.loads(answer.stdout)
    assert [f["name"] for f in flushed["failed"]] == ["node-2"]


def test_warm_fills_every_cache_with_the_run(up: dict[str, Any]) -> None:
    site = proxy(up, "site")["url"]
    answer = outpost("warm", "--globaltag", GLOBAL_TAG, "--run", "600", "--proxy", site, "--json")
    assert answer.returncode == 0, answer.stderr
    warmed = orjson.loads(answer.stdout)
    assert warmed["warmed"] == warmed["urls"] > 1
    node = proxy(up, "node-2")["url"]
    resolve = httpx.get(f"{node}/v1/resolve/{GLOBAL_TAG}?run=600")
    assert "node-2; hit" in resolve.headers["cache-status"]


def test_status_shows_the_tree(up: dict[str, Any]) -> None:
    answer = outpost("status", "--proxy", proxy(up, "site")["url"], "--json")
    tree = orjson.loads(answer.stdout)
    assert tree["name"] == "site"
    assert sorted(child["name"] for child in tree["subtree"]) == ["node-1", "node-2"]
    text = outpost("status", "--proxy", proxy(up, "site")["url"])
    assert "node-1" in text.stdout and "epoch" in text.stdout


def test_get_shows_what_a_node_receives(up: dict[str, Any]) -> None:
    url = f"{proxy(up, 'node-1')['url']}/v1/resolve/{GLOBAL_TAG}?run=5"
    answer = orjson.loads(outpost("get", url, "--json").stdout)
    assert answer["status"] == 200
    assert "node-1" in answer["cache_status"]
    assert answer["body"]["globaltag"] == GLOBAL_TAG


def test_sigterm_stops_every_tier(up: dict[str, Any]) -> None:
    urls = [up["origin"], *(p["url"] for p in up["proxies"])]
    up["process"].send_signal(signal.SIGTERM)
    assert up["process"].wait(30) == 0
    deadline = time.monotonic() + 10
    for url in urls:
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/_outpost/healthz", timeout=0.5)
            except httpx.TransportError:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"{url} still answers after outpost up stopped")


def test_resolve_prints_the_records_a_node_gets(up: dict[str, Any]) -> None:
    node = proxy(up, "node-1")["url"]
    answer = outpost(
        "resolve", GLOBAL_TAG, "--run", "500", "--proxy", node, "--server", up["origin"], "--json"
    )
    assert answer.returncode == 0, answer.stderr
    resolution = orjson.loads(answer.stdout)
    direct = httpx.get(f"{up['origin']}/v1/resolve/{GLOBAL_TAG}?run=500").json()
    assert [r["payload"] for r in resolution["records"]] == [
        r["payload"] for r in direct["records"]
    ]
    table = outpost("resolve", GLOBAL_TAG, "--run", "500", "--proxy", node)
    assert table.returncode == 0 and "EcalPedestalsRcd" in table.stdout
