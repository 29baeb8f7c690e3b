"""Raw HTTP/1.x over one socket, for tests that must send what no client library would (a
header value ending in a space, pipelined requests, half a request) and read answers as sent."""

from __future__ import annotations

import socket
from dataclasses import dataclass

__all__ = ["Answer", "Connection", "get"]


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers if k == name)


class Connection:
    """One raw HTTP connection: requests written as given, answers read by Content-Length."""

    def __init__(self, url: str, source: str = "127.0.0.1") -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection(
            (host, int(port)), timeout=10, source_address=(source, 0)
        )
        self.reader = self.sock.makefile("rb")

    def send(self, *requests: str) -> None:
        self.sock.sendall("".join(requests).encode())

    def answer(self, head_only: bool = False) -> Answer:
        status_line = self.reader.readline()
        if not status_line:
            raise ConnectionError("closed by the server")
        headers = []
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip().lower(), value.strip()))
        length = int(dict(headers).get("content-length", "0"))
        body = b"" if head_only else self.reader.read(length)
        return Answer(int(status_line.split()[1]), headers, body)

    def closed_by_server(self) -> bool:
        self.sock.settimeout(0.5)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False
        except ConnectionError:
            return True

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def get(path: str, version: str = "1.1", method: str = "GET", extra: str = "") -> str:
    return f"{method} {path} HTTP/{version}\r\nHost: node\r\n{extra}\r\n"
