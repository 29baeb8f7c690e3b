"""Large cold answers are relayed: each waiting client receives the bytes as they arrive from
upstream, the answer is stored once complete and verified, and a body that breaks off or fails
its hash reaches no client whole (the connection closes before the declared length), while the
next request fails over to an upstream with the right bytes.

Real processes on loopback: `outpost proxy` in front of two `tests/support/trickle_origin.py`
upstreams, which serve a 1 MiB payload in 64 KiB parts and can hold, corrupt or cut it."""

from __future__ import annotations

import concurrent.futures
import hashlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from support.stack import Server, Stack
from support.trickle_origin import payload

SIZE = 1024 * 1024
BODY = payload(SIZE)
PATH = f"/v1/payloads/{hashlib.sha256(BODY).hexdigest()}"


@dataclass
class Relayed:
    status: int
    headers: dict[str, str]
    body: bytes
    sock: socket.socket

    def rest(self) -> bytes:
        """Read until the declared length or until the proxy closes the connection."""
        length = int(self.headers["content-length"])
        while len(self.body) < length:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                break
            self.body += chunk
        self.sock.close()
        return self.body


def start_get(url: str, at_least: int) -> Relayed:
    """Send a GET of PATH and read its head and at least `at_least` bytes of its body."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"GET {PATH} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < at_least:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return Relayed(int(lines[0].split()[1]), headers, body, sock)


@pytest.fixture
def upstreams(stack: Stack) -> Iterator[tuple[str, str]]:
    first, second = (stack.support_app("trickle_origin", name) for name in ("first", "second"))
    for url in (first, second):
        httpx.post(f"{url}/size/{SIZE}")
    yield first, second
    httpx.post(f"{first}/release")


@pytest.fixture
def node(stack: Stack, upstreams: tuple[str, str]) -> Server:
    return stack.proxy("node", list(upstreams), env={"OUTPOST_PROXY_RELAY_FROM_BYTES": "256KiB"})


def count(url: str) -> int:
    return int(httpx.get(f"{url}/count").text)


def test_waiting_clients_receive_the_first_bytes_before_the_upstream_sent_the_rest(
    upstreams: tuple[str, str], node: Server
) -> None:
    first, _ = upstreams
    httpx.post(f"{first}/mode/hold")  # sends 64 KiB, then waits for /release
    clients = [start_get(node.url, 1) for _ in range(8)]
    for client in clients:  # the upstream is still holding the rest back
        assert client.status == 200
        assert client.headers["content-length"] == str(SIZE)
        assert 0 < len(client.body) < SIZE
        assert BODY.startswith(client.body)
    httpx.post(f"{first}/release")
    for client in clients:
        assert client.rest() == BODY
    assert count(first) == 1
    again = httpx.get(node.url + PATH)
    assert again.content == BODY
    assert again.headers["cache-status"].startswith("node; hit")
    assert count(first) == 1


def test_a_body_that_fails_its_hash_never_reaches_a_client_whole_and_the_next_fails_over(
    upstreams: tuple[str, str], node: Server
) -> None:
    first, second = upstreams
    httpx.post(f"{first}/mode/hold+corrupt")
    clients = [start_get(node.url, 1) for _ in range(4)]  # all reading the one relayed body
    httpx.post(f"{first}/release")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        broken = list(pool.map(Relayed.rest, clients))
    for body in broken:
        assert len(body) < SIZE  # closed before the declared length: not taken for whole
        assert BODY.startswith(body)  # and what did arrive was the upstream's bytes
    assert count(first) == 1 and count(second) == 0
    retry = httpx.get(node.url + PATH)
    assert retry.status_code == 200 and retry.content == BODY
    assert count(second) == 1
    assert httpx.get(node.url + PATH).headers["cache-status"].startswith("node; hit")
    metrics = httpx.get(node.url + "/_outpost/metrics").text
    assert 'kind="integrity"' in metrics


def test_a_body_cut_short_upstream_closes_the_clients_connection_and_is_not_stored(
    upstreams: tuple[str, str], node: Server
) -> None:
    first, second = upstreams
    httpx.post(f"{first}/mode/cut")
    body = start_get(node.url, 0).rest()
    assert len(body) < SIZE
    retry = httpx.get(node.url + PATH)
    assert retry.status_code == 200 and retry.content == BODY
    assert count(second) == 1  # the cut answer was not stored; the retry failed over


def test_below_the_relay_threshold_an_answer_is_still_read_whole_and_checked_first(
    stack: Stack, upstreams: tuple[str, str]
) -> None:
    first, second = upstreams
    node = stack.proxy("whole", list(upstreams), env={"OUTPOST_PROXY_RELAY_FROM_BYTES": "2MiB"})
    httpx.post(f"{first}/mode/corrupt")
    answer = httpx.get(node.url + PATH)
    assert answer.status_code == 200 and answer.content == BODY  # failed over within the fetch
    assert count(first) == 1 and count(second) == 1
