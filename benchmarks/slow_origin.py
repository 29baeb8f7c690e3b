"""A slow origin for `cold_stampede.py`: every GET is answered after a fixed delay.

Each answer: `200`, `--body-bytes` bytes (default 1 KiB) of `application/octet-stream`,
`Content-Length`, `Cache-Control: public, max-age=300`, sent `--delay-ms` (default 50 ms) after
the request arrived. Every path asked for is counted; `GET /_count?prefix=P` answers (at once,
uncounted) with the JSON object {path: requests} of the paths that start with P.

    python benchmarks/slow_origin.py --port 8099 [--delay-ms 50] [--body-bytes 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
from collections.abc import Sequence
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

COUNT_PATH = "/_count"


class SlowOrigin:
    def __init__(self, delay_ms: float, body_bytes: int) -> None:
        self.delay = delay_ms / 1000
        self.body = (b"0123456789abcdef" * (body_bytes // 16 + 1))[:body_bytes]
        self.asked: collections.Counter[str] = collections.Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == COUNT_PATH:
            query = parse_qs(scope["query_string"].decode())
            prefix = query.get("prefix", [""])[0]
            counts = {p: n for p, n in self.asked.items() if p.startswith(prefix)}
            await _answer(send, 200, json.dumps(counts).encode(), b"application/json", b"no-store")
            return
        self.asked[path] += 1
        await asyncio.sleep(self.delay)
        await _answer(send, 200, self.body, b"application/octet-stream", b"public, max-age=300")


async def _answer(send: Send, status: int, body: bytes, kind: bytes, cache: bytes) -> None:
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", cache),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--body-bytes", type=int, default=1024)
    args = parser.parse_args(argv)
    app = SlowOrigin(args.delay_ms, args.body_bytes)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=300,
    )


if __name__ == "__main__":
    main()
