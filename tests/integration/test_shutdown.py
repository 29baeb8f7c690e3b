"""A server told to stop stops at once, long polls of the change feed included: one passed up by
a proxy that does not follow the feed answers 503 (`Retry-After: 0`, ask again elsewhere), and
one whose reader has already gone no longer holds the shutdown for uvicorn's grace period."""

from __future__ import annotations

import signal
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
from support.stack import Server, Stack


def head(server: Server) -> int:
    return int(httpx.get(f"{server.url}/v1/changes?after=0&limit=1").json()["head"])


def stop(server: Server) -> float:
    """SIGTERM, and how long the process took to exit."""
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(30)
    return time.monotonic() - started


def test_a_long_poll_passed_up_ends_when_the_proxy_stops(stack: Stack, sample_sqlite: str) -> None:
    origin = stack.origin(sample_sqlite)
    site = stack.proxy("site", [origin.url])  # no parent: it does not follow the feed
    position = head(site)
    answers: list[httpx.Response] = []
    url = f"{site.url}/v1/changes?after={position}&wait=30"
    poll = threading.Thread(target=lambda: answers.append(httpx.get(url, timeout=60)))
    poll.start()
    time.sleep(1.0)  # the poll waits at the origin, through the site
    assert stop(site) < 3
    poll.join(10)
    (answer,) = answers
    assert answer.status_code == 503 and answer.headers["retry-after"] == "0"
    assert "shutting down" in answer.json()["detail"]


def test_a_long_poll_whose_reader_left_does_not_hold_the_origin(
    stack: Stack, sample_sqlite: str
) -> None:
    origin = stack.origin(sample_sqlite)
    position = head(origin)
    address = urlsplit(origin.url)
    with socket.create_connection((address.hostname, address.port)) as reader:
        request = f"GET /v1/changes?after={position}&wait=30 HTTP/1.1\r\nHost: o\r\n\r\n"
        reader.sendall(request.encode())
        time.sleep(0.5)
    time.sleep(0.5)  # the reader is gone; its long poll still waits in the origin
    assert stop(origin) < 3
