"""A listening HTTP server that keeps every request it receives (method, path, headers, body)
and acknowledges flushes and warms like a child proxy; `GET /_recorded` returns them all.
Registered as a child, it shows exactly what a parent sends to whatever URL registers.

Run as `python -m uvicorn --app-dir tests/support recorder:app`.
"""

from __future__ import annotations

import base64

import orjson
from starlette.types import Receive, Scope, Send

recorded: list[dict[str, object]] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/_recorded":
        answer = orjson.dumps(recorded)
    elif scope["path"] == "/healthz":
        answer = b'{"status": "ok"}'
    else:
        recorded.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "headers": [
                    [k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]
                ],
                "body": base64.b64encode(body).decode(),
            }
        )
        answer = b'{"acked": 1, "failed": []}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})
