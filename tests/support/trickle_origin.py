"""An upstream that serves one large payload slowly, as it is told: `/v1/payloads/<sha256>` of
`payload(size)` for any `size` registered with `POST /size/<size>`, in 64 KiB parts.

`POST /mode/<mode>` sets how the next answers go:
- `good`: the whole body;
- `hold`: the first part, then nothing until `POST /release`, then the rest;
- `corrupt`: the right length, but the last byte is wrong;
- `cut`: half the body, then the connection is dropped;
- modes joined with `+` combine (`hold+corrupt`).

`/count` tells how many payload GETs arrived. Run as
`python -m uvicorn --app-dir tests/support trickle_origin:app`.
"""

from __future__ import annotations

import asyncio
import hashlib

from starlette.types import Receive, Scope, Send

PART = 64 * 1024
state: dict[str, object] = {"mode": "good", "count": 0}
bodies: dict[str, bytes] = {}
released = asyncio.Event()


def payload(size: int) -> bytes:
    """The deterministic payload of `size` bytes the tests and this upstream agree on."""
    block = hashlib.sha256(b"outpost relay test").digest()
    return (block * (size // len(block) + 1))[:size]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    if scope["method"] == "POST":
        if path.startswith("/size/"):
            body = payload(int(path.removeprefix("/size/")))
            bodies[hashlib.sha256(body).hexdigest()] = body
        elif path.startswith("/mode/"):
            state["mode"] = path.removeprefix("/mode/")
            released.clear()
        elif path == "/release":
            released.set()
        await _answer(send, 200, b"ok")
        return
    if path == "/count":
        await _answer(send, 200, str(state["count"]).encode())
        return
    if path == "/healthz":
        await _answer(send, 200, b"ok")
        return
    body = bodies.get(path.removeprefix("/v1/payloads/"))
    if body is None:
        await _answer(send, 404, b"no such payload")
        return
    state["count"] = int(str(state["count"])) + 1
    mode = set(str(state["mode"]).split("+"))
    if "corrupt" in mode:
        body = body[:-1] + bytes([body[-1] ^ 0xFF])
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"public, max-age=31536000, immutable"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for offset in range(0, len(body), PART):
        if "cut" in mode and offset >= len(body) // 2:
            raise ConnectionAbortedError("cut on purpose")  # uvicorn drops the connection
        part = body[offset : offset + PART]
        await send({"type": "http.response.body", "body": part, "more_body": True})
        if "hold" in mode and offset == 0:
            await released.wait()
    await send({"type": "http.response.body", "body": b""})


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
