"""Stand-ins for thousands of child proxies: one server that acknowledges every flush and warm
sent to `/<anything>/_outpost/flush`, counting them. Used to test and measure a parent's
fan-out, where starting thousands of real proxies is not possible on one machine.

Run as `python -m uvicorn --app-dir tests/support acker:app`.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

received = {"flush": 0, "warm": 0}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    if path.endswith("/_outpost/flush") or path.endswith("/_outpost/warm"):
        received[path.rsplit("/", 1)[-1]] += 1
        body = b'{"acked": 1, "failed": []}'
    elif path.endswith("/_outpost/count"):
        body = f'{{"flush": {received["flush"]}, "warm": {received["warm"]}}}'.encode()
    else:
        body = b'{"status": "ok"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
