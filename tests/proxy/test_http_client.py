"""The proxy's upstream HTTP client against a real socket server on loopback.

The server is a few lines of asyncio that records each request's bytes as received and answers
with bytes each test scripts, so what the client puts on the wire (and what it does with odd
answers) is seen exactly.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from proxy.http_client import (
    AiohttpClient,
    RawResponse,
    Unsendable,
    UpstreamTimeout,
    UpstreamUnreachable,
)

Script = Callable[[bytes], bytes | None]  # request head → raw answer (None: say nothing)


@dataclass
class WireServer:
    script: Script
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                answer = self.script(head)
                if answer is None:
                    await asyncio.sleep(30)
                    return
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


def ok(body: bytes = b"hello", *fields: str) -> bytes:
    head = "".join(f"{f}\r\n" for f in fields)
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{head}\r\n".encode() + body


def run(script: Script, test: Callable[[AiohttpClient, WireServer], Awaitable[None]]) -> None:
    async def main() -> None:
        server = WireServer(script)
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        server.url = f"http://127.0.0.1:{port}"
        client = AiohttpClient(connect_timeout=1.0, read_timeout=0.5, user_agent="outpost-proxy/t")
        try:
            await asyncio.wait_for(test(client, server), 10)
        finally:
            await client.aclose()
            listener.close()

    asyncio.run(main())


async def read(response: RawResponse) -> bytes:
    chunks = [chunk async for chunk in response.chunks]
    await response.aclose()
    return b"".join(chunks)


def test_the_target_and_fields_go_out_as_given_and_nothing_is_added() -> None:
    async def test(client: AiohttpClient, server: WireServer) -> None:
        target = "/a%2Fb/%7e?x=%41&y=a+b&z"
        response = await client.send("GET", server.url, target, [(b"x-frontier-id", b"n1")], None)
        assert await read(response) == b"hello"
        head = server.heads[0].decode("latin-1").lower()
        assert head.startswith(f"get {target.lower()} http/1.1\r\n")
        assert "x-frontier-id: n1" in head
        assert "\r\nuser-agent: outpost-proxy/t\r\n" in head
        for added in ("accept-encoding", "cookie"):
            assert f"\r\n{added}:" not in head

    run(lambda head: ok(), test)


def test_a_cookie_an_upstream_sets_is_never_sent_back() -> None:
    async def test(client: AiohttpClient, server: WireServer) -> None:
        for _ in range(2):
            await read(await client.send("GET", server.url, "/c", [], None))
        assert all(b"cookie" not in head.lower() for head in server.heads)

    run(lambda head: ok(b"x", "Set-Cookie: session=alice; Path=/"), test)


def test_redirects_are_answers_not_followed() -> None:
    async def test(client: AiohttpClient, server: WireServer) -> None:
        response = await client.send("GET", server.url, "/old", [], None)
        await read(response)
        assert response.status == 302
        assert len(server.heads) == 1

    run(lambda head: b"HTTP/1.1 302 Found\r\nlocation: /new\r\ncontent-length: 0\r\n\r\n", test)


def test_a_coded_body_comes_back_as_the_upstream_coded_it() -> None:
    coded = gzip.compress(b"calibration" * 100)

    async def test(client: AiohttpClient, server: WireServer) -> None:
        response = await client.send("GET", server.url, "/z", [(b"accept-encoding", b"gzip")], None)
        assert await read(response) == coded
        assert (b"Content-Encoding", b"gzip") in response.headers

    run(lambda head: ok(coded, "Content-Encoding: gzip"), test)


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        (b'HTTP/1.1 304 Not Modified\r\netag: "a"\r\n\r\n', b""),
        (ok(b""), b""),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n", b""),
        (
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n1\r\nh\r\n0\r\n\r\n",
            b"abcdefgh",
        ),
    ],
    ids=["204", "304", "empty", "chunked-empty", "chunked"],
)
def test_every_body_ends_empty_or_chunked(answer: bytes, body: bytes) -> None:
    """A body is read to its end whatever its framing, and reading it again gives nothing
    (an empty body once looped forever here)."""

    async def test(client: AiohttpClient, server: WireServer) -> None:
        for _ in range(2):  # the second on the kept-alive connection
            response = await client.send("GET", server.url, "/x", [], None)
            chunks = [chunk async for chunk in response.chunks]
            assert b"".join(chunks) == body
            assert [chunk async for chunk in response.chunks] == []
            await response.aclose()

    run(lambda head: answer, test)


def test_connections_are_kept_alive_between_requests() -> None:
    async def test(client: AiohttpClient, server: WireServer) -> None:
        for _ in range(5):
            await read(await client.send("GET", server.url, "/k", [], None))
        assert server.connections == 1

    run(lambda head: ok(), test)


def test_an_abandoned_body_closes_its_connection_instead_of_reusing_it() -> None:
    big = b"x" * (4 * 1024 * 1024)

    async def test(client: AiohttpClient, server: WireServer) -> None:
        response = await client.send("GET", server.url, "/big", [], None)
        await response.aclose()  # not one byte read: the rest must not be taken for an answer
        small = await client.send("GET", server.url, "/small", [], None)
        assert await read(small) == b"small"
        assert server.connections == 2

    run(lambda head: ok(big if b"/big" in head else b"small"), test)


def test_an_upstream_that_never_answers_times_out() -> None:
    async def test(client: AiohttpClient, server: WireServer) -> None:
        with pytest.raises(UpstreamTimeout):
            await client.send("GET", server.url, "/slow", [], None)

    run(lambda head: None, test)


def test_a_refused_connection_is_unreachable() -> None:
    async def test(client: AiohttpClient, server: WireServer) -> None:
        with pytest.raises(UpstreamUnreachable):
            await client.send("GET", "http://127.0.0.1:9", "/x", [], None)

    run(lambda head: ok(), test)


def test_a_body_cut_short_raises_while_reading() -> None:
    async def test(client: AiohttpClient, server: WireServer) -> None:
        response = await client.send("GET", server.url, "/cut", [], None)
        assert response.content_length == 100
        with pytest.raises(UpstreamUnreachable):
            await read(response)

    run(
        lambda head: b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nshort",
        test,
    )


@pytest.mark.parametrize(
    ("target", "fields"),
    [
        ("/a\r\nX-Injected: 1", []),
        ("/a b", []),
        ("/a\x00", []),
        ("http://elsewhere/", []),
        ("/a", [(b"x-id", b"v\r\nX-Injected: 1")]),
        ("/a", [(b"x-id", b"v\nX-Injected: 1")]),
        ("/a", [(b"x-id", b"\x00")]),
        ("/a", [(b"bad name", b"v")]),
        ("/a", [(b"x:y", b"v")]),
    ],
)
def test_a_request_that_would_split_on_the_wire_is_refused_before_sending(
    target: str, fields: list[tuple[bytes, bytes]]
) -> None:
    async def test(client: AiohttpClient, server: WireServer) -> None:
        with pytest.raises(Unsendable):
            await client.send("GET", server.url, target, fields, None)
        assert server.heads == []

    run(lambda head: ok(), test)
