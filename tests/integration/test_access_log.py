"""The access log with real processes: every request of a proxy and of the origin gets one line
(hits answered below ASGI included), in squid's, frontier-squid's and JSON layouts, written in
batches to a file that SIGUSR1 or SIGHUP reopens for logrotate; `off` writes nothing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from support.stack import Server, Stack

FRONTIER_ID = "CMSSW_14_0_0 4242 shifter"
RESOLVE = "/v1/resolve/OUTPOST_HLT_2026_V1?run=500"
RESOLVE_501 = "/v1/resolve/OUTPOST_HLT_2026_V1?run=501"


def lines(path: Path, count: int, seconds: float = 10) -> list[str]:
    """The first `count` lines of `path`, once written (the log writes in batches)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            found = path.read_text().splitlines()
            if len(found) >= count:
                return found
        time.sleep(0.05)
    raise AssertionError(f"{path} has fewer than {count} lines")


def json_proxy(stack: Stack, origin: Server, path: Path, name: str = "site") -> Server:
    env = {"OUTPOST_PROXY_ACCESS_LOG": str(path), "OUTPOST_PROXY_ACCESS_LOG_FORMAT": "json"}
    return stack.proxy(name, [origin.url], env=env)


def test_every_request_gets_a_line_with_what_the_cache_did(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    origin = stack.origin(sample_sqlite)
    path = tmp_path / "access.json"
    proxy = json_proxy(stack, origin, path)
    headers = {"X-Frontier-Id": FRONTIER_ID}
    with httpx.Client(base_url=proxy.url, headers=headers) as client:  # keep-alive: hit path
        client.get(RESOLVE)
        second = client.get(RESOLVE)
        head = client.head(RESOLVE)
        assert "hit" in second.headers["cache-status"] and head.status_code == 200
        assert client.get("/_outpost/healthz").status_code == 200
        assert client.get("/v1/tags/bad;name").status_code == 400
        # a known client's cold URL: its head starts the fetch below ASGI (`proxy.protocol`)
        assert client.get(RESOLVE_501).status_code == 200
    logged: list[dict[str, Any]] = [orjson.loads(line) for line in lines(path, 7)]
    records = logged[[r["target"] for r in logged].index(RESOLVE) :]  # after the start-up probes
    assert [(r["method"], r["status"], r["result"]) for r in records] == [
        ("GET", 200, "TCP_MISS"),
        ("GET", 200, "TCP_MEM_HIT"),  # answered below ASGI, logged all the same
        ("HEAD", 200, "TCP_MEM_HIT"),
        ("GET", 200, "NONE"),
        ("GET", 400, "TCP_MISS"),  # not stored: passed to the origin, which refused it
        ("GET", 200, "TCP_MISS"),
    ]
    miss, hit, head_line = records[:3]
    assert miss["upstream"] == origin.url and miss["attempts"] == 1
    led = records[5]
    assert led["target"] == RESOLVE_501 and led["upstream"] == origin.url
    assert led["attempts"] == 1 and led["cache_status"].startswith("site; fwd=miss")
    assert hit["upstream"] == "-" and hit["bytes"] == int(second.headers["content-length"])
    assert head_line["bytes"] == 0
    assert all(r["target"] == RESOLVE and r["frontier_id"] == FRONTIER_ID for r in records[:3])
    assert miss["cache_status"].startswith("site; fwd=miss")
    assert all(r["client"] == "127.0.0.1" and r["duration"] >= 0 for r in records)


def test_the_origin_logs_frontier_requests_as_frontier_squid_does(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    path = tmp_path / "origin.access"
    origin = stack.origin(sample_sqlite, env={"OUTPOST_ORIGIN_ACCESS_LOG": str(path)})
    target = "/Frontier/type=frontier_request:1:DEFAULT&encoding=BLOBzip&p1=eNoLdg1y8fQLAQAPwAMH"
    httpx.get(origin.url + target, headers={"X-Frontier-Id": FRONTIER_ID})
    line = lines(path, 2)[-1]  # after the start-up probe
    assert f'"GET {target} HTTP/1.1"' in line  # as sent: `grep type=frontier_request` finds it
    assert line.endswith(f'"{FRONTIER_ID}" "-"')


def test_squid_layout_and_a_hostile_target_stay_one_line(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    origin = stack.origin(sample_sqlite)
    path = tmp_path / "access.log"
    env = {"OUTPOST_PROXY_ACCESS_LOG": str(path), "OUTPOST_PROXY_ACCESS_LOG_FORMAT": "squid"}
    proxy = stack.proxy("site", [origin.url], env=env)
    httpx.get(proxy.url + RESOLVE)
    httpx.get(proxy.url + '/v1/tags/x"y\\z?a=%0d%0aforged')
    logged = lines(path, 3)
    first, second = logged[-2:]
    fields = first.split()
    assert len(fields) == 10 and fields[3] == "TCP_MISS/200" and fields[6] == RESOLVE
    assert fields[8] == f"FIRSTUP_PARENT/{origin.url.removeprefix('http://')}"
    assert len(second.split()) == 10 and '"' not in second and "\\" not in second


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGHUP])
def test_a_signal_reopens_the_file_for_logrotate(
    stack: Stack, sample_sqlite: str, tmp_path: Path, signum: int
) -> None:
    origin = stack.origin(sample_sqlite)
    path = tmp_path / "access.json"
    proxy = json_proxy(stack, origin, path)
    httpx.get(proxy.url + RESOLVE)
    before = len(lines(path, 2))
    rotated = tmp_path / "access.json.1"
    os.rename(path, rotated)  # logrotate moves it away, then signals
    os.kill(proxy.process.pid, signum)
    time.sleep(0.6)  # the reopen happens at the next batch
    httpx.get(proxy.url + "/_outpost/healthz")
    (line,) = lines(path, 1)
    assert orjson.loads(line)["target"] == "/_outpost/healthz"
    assert len(rotated.read_text().splitlines()) == before
    assert proxy.process.poll() is None


def test_off_writes_nothing_and_stdout_is_the_default(
    stack: Stack, sample_sqlite: str, tmp_path: Path
) -> None:
    origin = stack.origin(sample_sqlite, env={"OUTPOST_ORIGIN_ACCESS_LOG": "off"})
    proxy = stack.proxy("site", [origin.url])  # default: standard output, frontier layout
    httpx.get(proxy.url + RESOLVE)
    time.sleep(0.6)
    assert 'HTTP/1.1" 200' in proxy.log.read_text()
    assert RESOLVE not in origin.log.read_text()
