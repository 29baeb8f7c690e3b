"""An upstream that answers every payload request with the wrong bytes (fault injection).

Run as `python -m uvicorn --app-dir tests/support corrupt:app`.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] in ("/_outpost/healthz", "/healthz"):
        body, status = b'{"status":"ok"}', 200
    elif scope["path"].startswith("/v1/payloads/"):
        body, status = b"these are not the bytes you are looking for", 200
    else:
        body, status = b'{"error":"not found"}', 404
    digest = scope["path"].rsplit("/", 1)[-1]
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"public, max-age=31536000, immutable"),
        (b"etag", f'"{digest}"'.encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
