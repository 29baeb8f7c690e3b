"""The tree's fan-out (`proxy.tree.FanOut`) against a real child on loopback: a child's answer
is read whole however many reads it takes, and one over the bound is a failure, not memory."""

from __future__ import annotations

import asyncio
import time

import orjson

from proxy.tree import MAX_ANSWER_BYTES, Child, FanOut


async def _child(answer: bytes) -> tuple[asyncio.Server, str]:
    """A child that answers every request with `answer` as its body, written in small pieces."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )  # fmt: skip
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(answer)
        )
        for start in range(0, len(answer), 16 * 1024):  # many reads on the other side
            writer.write(answer[start : start + 16 * 1024])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def collect(answer: bytes) -> tuple[list[object], list[dict[str, str]]]:
    async def run() -> tuple[list[object], list[dict[str, str]]]:
        server, url = await _child(answer)
        async with server:
            child = Child("site-1", url, time.time())
            answers, failed = await FanOut(signer=None, timeout=10).collect(
                [child], "/_outpost/flush", {"run": 1}
            )
        return [found for _, found in answers], failed

    return asyncio.run(run())


def test_a_long_answer_is_read_whole() -> None:
    caches = [f"node-{index:05d}" for index in range(60_000)]  # a big site's flush answer
    document = {"acked": len(caches), "caches": caches, "failed": []}
    answers, failed = collect(orjson.dumps(document))
    assert failed == [] and answers == [document]


def test_an_answer_over_the_bound_is_a_failure() -> None:
    answers, failed = collect(b'"' + b"x" * MAX_ANSWER_BYTES + b'"')
    assert answers == [] and [f["name"] for f in failed] == ["site-1"]
    assert "answer over" in failed[0]["error"]
