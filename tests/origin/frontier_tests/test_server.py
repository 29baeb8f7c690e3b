"""End to end: a real `outpost origin` on loopback, spoken to over a socket as frontier_client does.

frontier_client (`fn-htclient.c`) writes `GET /<servlet path>/<params> HTTP/1.0`, `Host:` without
the port, `X-Frontier-Id`, `Cache-Control: max-stale=1` and `Connection: keep-alive`; it reads the
status line, then the headers (Content-Length among them), then exactly that many bytes, and
keeps the connection for the next request unless the answer had no Content-Length.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

from support.fnkit import frontier_url, parse_answer
from support.servers import free_port, outpost_command, run_process


@contextlib.contextmanager
def origin(db: str, log: Path) -> Iterator[int]:
    port = free_port()
    command = outpost_command("origin", "--db", db, "--port", str(port), "--log-level", "warning")
    with run_process(command, log, ready_url=f"http://127.0.0.1:{port}/_outpost/healthz"):
        yield port


def send(sock: socket.socket, path: str) -> None:
    request = (
        f"GET {path} HTTP/1.0\r\n"
        "Host: 127.0.0.1\r\n"
        "X-Frontier-Id: fnkit 1.0 (outpost end-to-end test)\r\n"
        "Cache-Control: max-stale=1\r\n"
        "Connection: keep-alive\r\n"
        "\r\n"
    )
    sock.sendall(request.encode("ascii"))


def receive(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """Status line, headers, and a body of exactly Content-Length bytes."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed inside the head: {buffer!r}"
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert "transfer-encoding" not in headers  # frontier_client cannot read chunks
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the body"
        rest += chunk
    assert len(rest) == length, "more bytes than Content-Length"
    return status, headers, rest


def test_frontier_client_gets_its_answers_over_http_1_0(sample_sqlite: str, tmp_path: Path) -> None:
    first_path = frontier_url("SELECT name, time_type FROM tags ORDER BY name")
    digests = ",".join(f"'{hashlib.sha256(str(i).encode()).hexdigest()}'" for i in range(600))
    long_path = frontier_url(  # longer than the origin's 8 KiB URLs: Frontier's own limit
        f"SELECT count(*) FROM tags WHERE name NOT IN ({digests})",  # noqa: S608 (sent, not run)
        servlet="FrontierProd",
    )
    assert len(long_path) > 20 * 1024
    with (
        origin(sample_sqlite, tmp_path / "origin.log") as port,
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        send(sock, first_path)
        status, headers, body = receive(sock)
        assert status.startswith(("HTTP/1.0 200", "HTTP/1.1 200")), status
        assert headers["content-type"] == "text/xml;charset=US-ASCII"
        assert headers["cache-control"] == "max-age=21600, stale-if-error=1"
        (payload,) = parse_answer(body).payloads
        assert len(payload.rows) == 30 and payload.columns[0] == ("name", "VARCHAR2")

        if headers.get("connection", "").lower() == "close":
            assert sock.recv(1) == b""  # the server closes: the client reconnects
            stack = contextlib.ExitStack()
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
        else:
            stack = contextlib.ExitStack()
        with stack:
            send(sock, long_path)  # keep-alive honoured: the same connection again
            status, headers, body = receive(sock)
        assert status.startswith(("HTTP/1.0 200", "HTTP/1.1 200")), status
        (payload,) = parse_answer(body).payloads
        assert payload.rows == [[b"30"]]
