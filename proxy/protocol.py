"""Plain hits answered below ASGI: uvicorn's httptools protocol with a hit path of our own.

In a run-start storm a node cache answers almost only plain GETs of fresh entries, and most
of a hit's CPU went to the ASGI machinery around a few microseconds of cache lookup: a task,
a scope, a request-response cycle, two `send` messages, the response head rebuilt and two
socket writes per request (`benchmarks/server_floor.py`). `HitProtocol` is uvicorn's own
protocol (`uvicorn --http`, which accepts a protocol class) that, once a request's headers are
parsed, asks `ProxyApp.answer_hit` for the hit and, if there is one, writes the prepared head
and the body to the socket in one call; every other request goes to the ASGI app unchanged.

It takes the hit path only when that cannot change what the client sees:
- the connection has nothing in flight (no ASGI cycle unanswered, no pipelined request queued),
  so answers stay in request order;
- HTTP/1.1 with keep-alive, no `Expect: 100-continue`, no upgrade: HTTP/1.0 clients
  (frontier_client) keep uvicorn's own connection handling;
- the transport is not paused for writing (a slow reader gets ASGI's back-pressure);
- no access log is configured (uvicorn logs what goes through its cycle);
- `answer_hit` agrees: origin-form target, a client the gate already admitted, no forward mode,
  not an admin route, the request's directives leave a fresh memory entry servable.

It builds on uvicorn's protocol internals (`cycle`, `pipeline`, `flow`, `url`, `headers`), so
`pyproject.toml` bounds uvicorn's version; `tests/integration/test_hit_protocol.py` checks the
behaviour that depends on them.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.app import ProxyApp

__all__ = ["HitProtocol", "find_proxy_app"]


def find_proxy_app(app: Any) -> ProxyApp | None:
    """The ProxyApp inside uvicorn's loaded app (it may wrap it in middleware), or None."""
    for _ in range(8):
        if isinstance(app, ProxyApp):
            return app
        app = getattr(app, "app", None)
    return None


class HitProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proxy = find_proxy_app(self.app)
        self.answered = False  # the current request was answered by the hit path

    def on_message_begin(self) -> None:
        self.answered = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if self.proxy is not None and self._idle() and self._answer_hit(self.proxy):
            self.answered = True
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.answered:  # a GET's body, if any, is read and dropped
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self.answered:
            super().on_message_complete()

    def _idle(self) -> bool:
        cycle = self.cycle
        return (
            (cycle is None or cycle.response_complete)
            and not self.pipeline
            and not self.flow.write_paused
            and not self.expect_100_continue
            and not self.access_log
        )

    def _answer_hit(self, proxy: ProxyApp) -> bool:
        parser = self.parser
        if parser.get_http_version() != "1.1" or not parser.should_keep_alive():
            return False
        method = parser.get_method()
        if method not in (b"GET", b"HEAD") or parser.should_upgrade():
            return False
        answer = proxy.answer_hit(self.url, self.headers, self.client, method == b"HEAD")
        if answer is None:
            return False
        head, body = answer
        if body:
            self.transport.writelines(answer)  # one write call (uvloop: one writev)
        else:
            self.transport.write(head)
        self.server_state.total_requests += 1
        self._unset_keepalive_if_required()  # several requests may arrive in one read
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
        return True
