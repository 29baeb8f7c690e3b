"""A blocking httpx transport onto an in-process ASGI app (`support.asgi.AppClient`), for code
that takes an `httpx.BaseTransport` (the sync's source reader): the real app, no sockets."""

from __future__ import annotations

import httpx

from support.asgi import AppClient

__all__ = ["AppTransport"]


class AppTransport(httpx.BaseTransport):
    def __init__(self, app: AppClient) -> None:
        self.app = app
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        answer = self.app.request(
            request.method, str(request.url.raw_path.decode()), headers=headers
        )
        # the app client decoded the body already: hand it on as identity-coded bytes
        dropped = ("content-encoding", "content-length", "transfer-encoding")
        kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in dropped]
        return httpx.Response(answer.status_code, headers=kept, content=answer.content)
