"""A synchronous test client for an ASGI app: httpx over `ASGITransport`, lifespan run explicitly.

The app runs on an event loop in a background thread (an anyio blocking portal), so tests and
hypothesis properties stay plain functions while the app sees the real ASGI protocol, startup
and shutdown included.
"""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal
from starlette.types import ASGIApp, Message

__all__ = ["AppClient"]


class AppClient:
    def __init__(self, app: ASGIApp, base_url: str = "http://origin.test") -> None:
        self.app = app
        self.base_url = base_url
        self._stack = contextlib.ExitStack()
        self._portal: BlockingPortal | None = None
        self._client: httpx.AsyncClient | None = None
        self._lifespan: Any = None
        self._channels: Any = None

    def __enter__(self) -> AppClient:
        portal = self._stack.enter_context(start_blocking_portal())
        self._portal = portal
        to_app, app_inbox = anyio.create_memory_object_stream[Message](4)
        app_outbox, from_app = anyio.create_memory_object_stream[Message](4)
        self._channels = (to_app, from_app)
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

        async def run_lifespan() -> None:
            async with app_inbox, app_outbox:
                await self.app(scope, app_inbox.receive, app_outbox.send)

        self._lifespan = portal.start_task_soon(run_lifespan)
        portal.call(self._exchange, "lifespan.startup")
        transport = httpx.ASGITransport(app=self.app)  # type: ignore[arg-type]
        self._client = httpx.AsyncClient(transport=transport, base_url=self.base_url)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._portal is not None and self._client is not None
        self._portal.call(self._client.aclose)
        self._portal.call(self._exchange, "lifespan.shutdown")
        self._lifespan.result(timeout=10)
        self._stack.close()

    async def _exchange(self, event: str) -> None:
        to_app, from_app = self._channels
        await to_app.send({"type": event})
        message = await from_app.receive()
        if message["type"] != f"{event}.complete":
            raise RuntimeError(f"{event} failed: {message}")
        if event == "lifespan.shutdown":
            await to_app.aclose()
            await from_app.aclose()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        assert self._portal is not None and self._client is not None
        client = self._client
        return self._portal.call(lambda: client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("HEAD", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)
