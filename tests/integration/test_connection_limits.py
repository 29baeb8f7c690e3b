"""What one client connection may cost `outpost proxy` and `outpost origin` (real processes,
raw sockets on loopback; `outpost.connections.LimitedProtocol`): a streamed huge header is
refused early with 431 and the server's peak memory barely moves; too many header fields get
431; a connection that sends nothing or half a head is closed after the header timeout; over
the connection cap a connection gets a 503 JSON answer and the server answers again once
connections drop; a proxy under a low `ulimit -n` flooded with idle connections stays
reachable; the soft RLIMIT_NOFILE is raised to the hard limit at start-up."""

from __future__ import annotations

import contextlib
import select
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.stack import Server, Stack

HEALTHZ = "/_outpost/healthz"
MAX_HEADER_BYTES = 8 * 1024
MAX_HEADER_COUNT = 20
MAX_CONNECTIONS = 16
LIMITS = {
    "MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
    "MAX_HEADER_COUNT": str(MAX_HEADER_COUNT),
    "HEADER_TIMEOUT_SECONDS": "1",
    "MAX_CONNECTIONS": str(MAX_CONNECTIONS),
}
UNUSED_UPSTREAM = ["http://127.0.0.1:9"]  # never contacted: only the health route is used


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> str:
        assert self.headers["content-type"] == "application/json"
        document = orjson.loads(self.body)
        assert set(document) == {"error", "detail", "accepted"}
        return str(document["error"])


def read_answer(sock: socket.socket, timeout: float = 10) -> Answer:
    """One answer read from `sock` (by Content-Length)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed by the server after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return Answer(int(status_line.split()[1]), headers, body)


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes `sock` (EOF or reset) within `timeout`, reading nothing."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def everything(sock: socket.socket, timeout: float) -> bytes | None:
    """What the server sends on `sock` until it closes it; None if still open after `timeout`."""
    data, deadline = b"", time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        except ConnectionError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of process `pid` (VmHWM), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def request(extra: str = "") -> bytes:
    return f"GET {HEALTHZ} HTTP/1.1\r\nHost: node\r\n{extra}\r\n".encode()


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, sqlite_templates: dict[bool, Path]
) -> Iterator[dict[str, Server]]:
    """A proxy and an origin with small limits: 8 KiB heads, 20 fields, 1 s to send a head,
    16 connections."""
    root = tmp_path_factory.mktemp("limits")
    shutil.copyfile(sqlite_templates[True], root / "conditions.sqlite")
    stack = Stack(root)
    try:
        proxy = stack.proxy(
            "node", UNUSED_UPSTREAM, env={f"OUTPOST_PROXY_{k}": v for k, v in LIMITS.items()}
        )
        origin = stack.origin(
            f"sqlite:///{root / 'conditions.sqlite'}",
            env={f"OUTPOST_ORIGIN_{k}": v for k, v in LIMITS.items()},
        )
        yield {"proxy": proxy, "origin": origin}
    finally:
        stack.close()


@pytest.fixture(params=["proxy", "origin"])
def server(request: pytest.FixtureRequest, servers: dict[str, Server]) -> Server:
    return servers[request.param]


def test_a_streamed_huge_header_gets_431_early_and_peak_memory_barely_moves(
    server: Server,
) -> None:
    assert httpx.get(server.url + HEALTHZ).status_code == 200  # warm
    before = vm_hwm_kib(server.process.pid)
    sock = connect(server)
    sock.sendall(b"GET /_outpost/healthz HTTP/1.1\r\nHost: node\r\nX-Big: ")
    chunk, sent, streamed = b"a" * (1 << 20), 0, 64 << 20
    while sent < streamed and not select.select([sock], [], [], 0)[0]:
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    answer = read_answer(sock)
    sock.close()
    assert answer.status == 431
    assert answer.error() == "request header fields too large"
    assert answer.headers["connection"] == "close"
    assert sent < 16 << 20  # answered long before the 64 MiB were sent
    assert vm_hwm_kib(server.process.pid) - before < 16 * 1024


def test_too_many_header_fields_get_431(server: Server) -> None:
    fields = [f"X-F{i}: v\r\n" for i in range(MAX_HEADER_COUNT)]
    with contextlib.closing(connect(server)) as sock:  # Host and 19 more: the limit
        sock.sendall(request("".join(fields[1:])))
        assert read_answer(sock).status == 200
    with contextlib.closing(connect(server)) as sock:
        sock.sendall(request("".join(fields)))
        answer = read_answer(sock)
    assert answer.status == 431
    assert answer.error() == "request header fields too large"
    assert f"more than {MAX_HEADER_COUNT} header fields" in orjson.loads(answer.body)["detail"]


def test_a_malformed_head_gets_400_as_json(server: Server) -> None:
    with contextlib.closing(connect(server)) as sock:
        sock.sendall(b"GET /_outpost/healthz HTTP/1.1\r\nHost: node\r\nBad Name: x\r\n\r\n")
        answer = read_answer(sock)
    assert answer.status == 400
    assert answer.error() == "bad request"
    assert answer.headers["connection"] == "close"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(0, 2500), max_size=MAX_HEADER_COUNT - 1),
    cuts=st.lists(st.integers(1, 20_000), max_size=12),
)
def test_a_head_within_the_limit_passes_however_it_is_split_and_one_over_it_never_does(
    servers: dict[str, Server], sizes: list[int], cuts: list[int]
) -> None:
    """Whole head <= max_header_bytes: served; header fields + URL > max_header_bytes: 431;
    whatever reads the head arrives in."""
    head = request("".join(f"X-F{i}: {'v' * n}\r\n" for i, n in enumerate(sizes)))
    counted = len(HEALTHZ) + len("hostnode") + sum(len(f"X-F{i}") + n for i, n in enumerate(sizes))
    points = sorted({c for c in cuts if c < len(head)})
    pieces = [head[a:b] for a, b in zip([0, *points], [*points, len(head)], strict=True)]
    with contextlib.closing(connect(servers["proxy"])) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(0.002)  # mostly one read per piece
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the end
        status = read_answer(sock).status
    if len(head) <= MAX_HEADER_BYTES:
        assert status == 200
    if counted > MAX_HEADER_BYTES:
        assert status == 431


def test_silent_and_half_sent_connections_are_closed_after_the_header_timeout(
    server: Server,
) -> None:
    kept = connect(server)
    kept.sendall(request())
    assert read_answer(kept).status == 200
    silent, half, trickle = connect(server), connect(server), connect(server)
    half.sendall(b"GET /_outpost/healthz HTTP/1.1\r\nHost: node\r\nX-A: b")
    started = time.monotonic()

    def drip() -> None:  # a byte every 0.1 s: data keeps coming, the head never completes
        with contextlib.suppress(OSError):
            trickle.sendall(b"GET /_outpost/healthz HTTP/1.1\r\n")
            for _ in range(100):
                trickle.sendall(b"X")
                time.sleep(0.1)

    dripping = threading.Thread(target=drip)
    dripping.start()
    answer = read_answer(half, timeout=5)
    assert answer.status == 408
    assert answer.error() == "request timeout"
    assert 0.9 < time.monotonic() - started < 4
    assert closed_by_server(half, 4)
    assert read_answer(trickle, timeout=5).status == 408
    dripping.join(15)
    assert closed_by_server(silent, 4)
    assert time.monotonic() - started < 6
    kept.sendall(request())  # idle past the header timeout between requests: keep-alive rules
    assert read_answer(kept).status == 200
    for sock in (kept, silent, half, trickle):
        sock.close()


def test_over_the_connection_cap_a_connection_gets_503_and_service_resumes(
    server: Server,
) -> None:
    idle = [connect(server) for _ in range(MAX_CONNECTIONS)]
    time.sleep(0.2)  # all accepted
    extra = connect(server)
    extra.sendall(request())
    answer = read_answer(extra)
    assert answer.status == 503
    assert answer.error() == "service unavailable"
    assert answer.headers["retry-after"] == "2"
    assert answer.headers["connection"] == "close"
    assert closed_by_server(extra, 4)
    assert all(closed_by_server(sock, 4) for sock in idle)  # reaped by the header timeout
    assert httpx.get(server.url + HEALTHZ).status_code == 200
    for sock in (*idle, extra):
        sock.close()


def _open_files(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no Max open files")


def test_the_soft_file_limit_is_raised_to_the_hard_limit(stack: Stack) -> None:
    proxy = stack.proxy("node", UNUSED_UPSTREAM, prefix=("prlimit", "--nofile=256:2048"))
    assert _open_files(proxy.process.pid) == (2048, 2048)


def test_a_proxy_under_a_low_file_limit_flooded_with_idle_connections_stays_reachable(
    stack: Stack,
) -> None:
    """ulimit -n 256 (so at most 256 - fd_reserve = 128 connections) and 400 connections that
    say nothing: the ones over the cap get 503 (at most 64 of them linger), the others are
    closed after the header timeout; the proxy answers all along, 503 then 200."""
    proxy = stack.proxy(
        "node",
        UNUSED_UPSTREAM,
        env={"OUTPOST_PROXY_HEADER_TIMEOUT_SECONDS": "1"},
        prefix=("prlimit", "--nofile=256:256"),
    )
    flood = [connect(proxy) for _ in range(400)]
    statuses: list[int] = []
    deadline = time.monotonic() + 15
    while 200 not in statuses and time.monotonic() < deadline:
        statuses.append(httpx.get(proxy.url + HEALTHZ, timeout=5).status_code)
        time.sleep(0.1)
    assert statuses[-1] == 200
    assert set(statuses) <= {200, 503}  # answered all along: descriptors to spare
    assert proxy.process.poll() is None
    received = [everything(sock, 5) for sock in flood]
    assert None not in received  # every one closed by the proxy
    busy = sum(1 for data in received if data and data.startswith(b"HTTP/1.1 503 "))
    assert busy  # the cap answered some while the flood held the connections
    for sock in flood:
        sock.close()
