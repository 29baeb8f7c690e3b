"""Idle client connections stay open `keepalive_seconds` on both HTTP servers of the proxy, so
farm nodes keep their connections from one run to the next (uvicorn's own default closes them
after 5 s, granian's after 30 s)."""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.stack import Stack


def _open_after_idle(url: str, idle: float) -> bool:
    """One request, `idle` seconds of silence, then: does the same connection still answer?"""
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
    connection.request("GET", "/_outpost/healthz")
    first = connection.getresponse()
    assert first.status == 200
    first.read()
    time.sleep(idle)
    try:
        connection.request("GET", "/_outpost/healthz")
        answer = connection.getresponse()
        answer.read()
    except (http.client.RemoteDisconnected, ConnectionError):
        return False
    finally:
        connection.close()
    return answer.status == 200  # on the same socket: http.client only reconnects when told


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_idle_connections_live_keepalive_seconds(stack: Stack, server: str) -> None:
    upstream = ["http://127.0.0.1:9"]  # never contacted: only the health route is used
    short = stack.proxy(
        "short", upstream, extra=("--server", server), env={"OUTPOST_PROXY_KEEPALIVE_SECONDS": "1"}
    )
    default = stack.proxy("default", upstream, extra=("--server", server))

    with ThreadPoolExecutor(2) as pool:  # both idle at once: the test waits 6 s, not 8.5
        short_open = pool.submit(_open_after_idle, short.url, 2.5)
        default_open = pool.submit(_open_after_idle, default.url, 6.0)
        assert not short_open.result()  # closed after its 1 s
        assert default_open.result()  # past uvicorn's 5 s default: the 120 s apply
