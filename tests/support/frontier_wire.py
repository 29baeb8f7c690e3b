"""A Frontier client on a raw socket, speaking HTTP/1.0 exactly as frontier_client does.

`fn-htclient.c` writes `GET <target> HTTP/1.0`, `Host:`, `X-Frontier-Id`, `Cache-Control:
max-stale=1` and `Connection: keep-alive`; through a proxy the target is the absolute URL. It reads
the head, then exactly Content-Length bytes (it cannot read chunked bodies), and keeps the
connection unless the answer had no length; a connection closed while idle is reopened.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import orjson

__all__ = ["Answer", "FrontierClient"]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after this answer

    def json(self) -> dict[str, object]:
        document: dict[str, object] = orjson.loads(self.body)
        return document


class FrontierClient:
    """One persistent connection, HTTP/1.0 requests with `Connection: keep-alive`; a connection
    the server closed is reopened, as frontier_client does after an empty response."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.connections = 0

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> FrontierClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(
        self,
        target: str,
        host: str,
        *,
        method: str = "GET",
        cache_control: str = "max-stale=1",
        extra: str = "",
    ) -> Answer:
        request = (
            f"{method} {target} HTTP/1.0\r\nHost: {host}\r\n"
            f"X-Frontier-Id: test 1.0 pid=1; user\r\nCache-Control: {cache_control}\r\n"
            f"{extra}Connection: keep-alive\r\n\r\n"
        ).encode()
        for _ in range(2):
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                self.connections += 1
            try:
                self.sock.sendall(request)
                head = self._head()
            except (ConnectionError, EOFError):
                self.close()  # closed while idle: reconnect and retry once
                continue
            return self._rest(head, method)
        raise AssertionError("no answer on a fresh connection")

    def _recv(self) -> bytes:
        assert self.sock is not None
        return self.sock.recv(65536)

    def _head(self) -> tuple[bytes, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._recv()
            if not chunk:
                raise EOFError("connection closed before an answer")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    def _rest(self, parts: tuple[bytes, bytes], method: str) -> Answer:
        head, body = parts
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            assert name.lower() not in headers, f"repeated {name}"
            headers[name.lower()] = value.strip()
        status = int(status_line.split()[1])
        assert "chunked" not in headers.get("transfer-encoding", ""), headers
        length = headers.get("content-length")
        bodiless = method == "HEAD" or status in (204, 304)
        if length is not None:
            while not bodiless and len(body) < int(length):
                chunk = self._recv()
                assert chunk, "connection closed inside the body"
                body += chunk
            assert len(body) == (0 if bodiless else int(length))
            closed = "close" in headers.get("connection", "").lower() and self._closed()
        else:
            # no Content-Length: the server must close the connection after the body
            while chunk := self._recv():
                body += chunk
            closed = True
        if bodiless:
            assert body == b""
        if closed:
            self.close()
        return Answer(status, headers, body, closed)

    def _closed(self) -> bool:
        try:
            return self._recv() == b""
        except (ConnectionError, TimeoutError):
            return True
