"""Plain hits answered below ASGI: uvicorn's httptools protocol with a hit path of our own.

In a run-start storm a node cache answers almost only plain GETs of fresh entries, and most
of a hit's CPU went to the ASGI machinery around a few microseconds of cache lookup: a task,
a scope, a request-response cycle, two `send` messages, the response head rebuilt and two
socket writes per request (`benchmarks/server_floor.py`). `HitProtocol` is uvicorn's own
protocol (`uvicorn --http`, which accepts a protocol class) that, once a request's headers are
parsed, asks the hit path (`proxy.hits.HitPath.answer_hit`) for the hit and, if there is one,
writes the prepared head and the body to the socket in one call; every other request goes to
the ASGI app unchanged. It depends on `proxy.hits` alone, never on the engine or the app.

It takes the hit path only when that cannot change what the client sees:
- the connection has nothing in flight (no ASGI cycle unanswered, no pipelined request queued),
  so answers stay in request order;
- HTTP/1.1 with keep-alive, no `Expect: 100-continue`, no upgrade: HTTP/1.0 clients
  (frontier_client) keep uvicorn's own connection handling;
- the transport is not paused for writing (a slow reader gets ASGI's back-pressure);
- uvicorn's own access log is off (it logs what goes through its cycle; Outpost's access log,
  `outpost.accesslog`, records the hits answered here as well);
- `answer_hit` agrees: origin-form target, a client the gate already admitted, no forward mode,
  not an admin route, the request's directives leave a fresh memory entry servable.

A plain GET whose URL is not stored yet waits below ASGI as well, for the fetch in flight (at
a run start, hundreds of a node's clients ask for the run's new resolve URL within
milliseconds) or for the one its own head starts (`HitPath.watch`: at a cold start hundreds of
new URLs arrive at once, and a fetch started from each leader's ASGI cycle would only go
upstream once the heads of all the others had been read). uvicorn makes its request cycle as
usual, so pipelining, keep-alive and shutdown work unchanged, but instead of running the app
the protocol waits for the fetch and then writes the answer the engine gives the leader or a
collapsed request (`HitPath.answer_waited`), in one write. If the fetch failed, stored another
variant or took longer than `coalesce_timeout_seconds`, the cycle runs the ASGI app with the
fetch's outcome, which it serves as it serves the engine's own waiters.

It builds on uvicorn's protocol internals (`cycle`, `pipeline`, `flow`, `url`, `headers`,
`_start_asgi_task`), so `pyproject.toml` bounds uvicorn's version;
`tests/integration/test_hit_protocol.py` checks the behaviour that depends on them. The limits
on heads, header time and connections come from `outpost.connections.LimitedProtocol`.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from outpost.connections import LimitedProtocol
from proxy.core.serving import response_head
from proxy.hits import COLLAPSED, INTERIM, RESERVED, HitPath, Watched

__all__ = ["HitProtocol", "find_hit_path"]


def find_hit_path(app: Any) -> HitPath | None:
    """The hit path of the proxy app inside uvicorn's loaded app (it may wrap it in
    middleware), or None."""
    for _ in range(8):
        hits = getattr(app, "hits", None)
        if isinstance(hits, HitPath):
            return hits
        app = getattr(app, "app", None)
    return None


class HitProtocol(LimitedProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.proxy = find_hit_path(self.app)
        self.answered = False  # the current request was answered by the hit path
        self.pending: Watched | None = None  # the fetch it is to wait for
        self.reserved: str | None = None  # the key of the flight it is to lead

    def on_head_accepted(self) -> None:
        self.answered = False
        proxy = self.proxy
        if proxy is not None and self._idle() and self._plain():
            started = time.perf_counter()
            method = self.parser.get_method()
            answer = proxy.answer_hit(self.url, self.headers, self.client, method == b"HEAD")
            if answer is not None:
                self._write(answer)
                if proxy.access_log is not None:
                    head, body = answer
                    proxy.access_log.hit(
                        self.client, method, self.url, head, len(body), started, self.headers
                    )
                self.answered = True
                self.server_state.total_requests += 1
                self._unset_keepalive_if_required()  # several requests may arrive in one read
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
                return
            watched = proxy.watch(self.parser.get_method(), self.url, self.headers, self.client)
            if isinstance(watched, str):
                self.reserved = watched
            else:
                self.pending = watched
        super().on_head_accepted()  # makes the cycle; `_start_asgi_task` takes both
        if self.reserved is not None and proxy is not None:  # no task took it: let it go
            proxy.release(self.reserved)
        self.pending = self.reserved = None

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if cycle.scope["http_version"] == "1.1":  # never a 1xx to an HTTP/1.0 client
            cycle.scope[INTERIM] = _InterimWriter(self.transport, cycle)  # type: ignore[literal-required]
        if self.reserved is not None:
            cycle.scope[RESERVED] = self.reserved  # type: ignore[literal-required]
            self.reserved = None
        pending, self.pending = self.pending, None
        if pending is None or app is not self.app or self.proxy is None:
            super()._start_asgi_task(cycle, app)
            return
        _Waiter(self, self.proxy, cycle, app, pending)

    def finish_waiting(self, waiter: _Waiter) -> None:
        """The fetch `waiter` waited for landed (or it waited too long): answer, or hand the
        request to the ASGI app."""
        cycle, proxy = waiter.cycle, waiter.proxy
        if cycle.disconnected:
            return  # the client left while it waited
        outcome = proxy.settled(waiter.pending)
        answer = None
        if not self.flow.write_paused:  # a slow reader gets the ASGI cycle's back-pressure
            answer = proxy.answer_waited(
                waiter.target, waiter.headers, waiter.head, outcome, waiter.started
            )
        if answer is None:  # the app answers it from the outcome, as the engine's waiters
            cycle.scope[COLLAPSED] = outcome  # type: ignore[literal-required]
            super()._start_asgi_task(cycle, waiter.app)
            return
        self._write(answer)
        log = proxy.access_log
        if log is not None:
            method = b"HEAD" if waiter.head else b"GET"
            seen = (self.client, method, waiter.target, answer[0], len(answer[1]))
            note = waiter.pending.note
            if note is None:
                log.hit(*seen, waiter.started, waiter.headers, "TCP_CF_HIT")
            else:  # it led the fetch: a miss, its line naming the upstream the fetch asked
                log.hit(*seen, waiter.started, waiter.headers, note=note)
        cycle.response_started = cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:  # the server is shutting down
            self.transport.close()
        cycle.on_response()  # counts it; the next pipelined request, or the keep-alive timer

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # the cycle holds this protocol (its `on_response`): let go of it, so a closed
        # connection's objects are freed at once instead of waiting for the cycle collector
        self.cycle = None  # type: ignore[assignment]

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

    def _plain(self) -> bool:
        """An HTTP/1.1 keep-alive GET or HEAD that asks for no upgrade."""
        parser = self.parser
        return (
            parser.get_http_version() == "1.1"
            and parser.should_keep_alive()
            and parser.get_method() in (b"GET", b"HEAD")
            and not parser.should_upgrade()
        )

    def _write(self, answer: tuple[bytes, bytes]) -> None:
        head, body = answer
        if body:
            self.transport.writelines(answer)  # one write call (uvloop: one writev)
        else:
            self.transport.write(head)


class _InterimWriter:
    """Writes an interim (1xx) answer to the client of `cycle`, before its final answer only
    (RFC 9110 §15.2: a proxy forwards them). It is in the cycle's scope, so it holds the cycle
    weakly: a reference cycle per request would be left for the cycle collector."""

    __slots__ = ("cycle", "transport")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self.transport, self.cycle = transport, weakref.ref(cycle)

    def __call__(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        cycle = self.cycle()
        if cycle is None:
            return  # the request is over
        if not (cycle.response_started or cycle.disconnected or self.transport.is_closing()):
            self.transport.write(response_head(status, headers))


class _Waiter:
    """One request waiting below ASGI for the fetch of its URL that is already in flight."""

    def __init__(
        self,
        protocol: HitProtocol,
        proxy: HitPath,
        cycle: RequestResponseCycle,
        app: Any,
        pending: Watched,
    ) -> None:
        self.protocol, self.proxy, self.cycle, self.app = protocol, proxy, cycle, app
        self.pending = pending
        self.target, self.headers = protocol.url, protocol.headers
        self.head = cycle.scope["method"] == "HEAD"
        self.started = time.perf_counter()
        self.settled = False
        self.timer = protocol.loop.call_later(proxy.timeout, self.settle)
        pending.result.add_done_callback(self.settle)

    def settle(self, _: object = None) -> None:
        if self.settled:
            return
        self.settled = True
        self.timer.cancel()
        self.pending.result.remove_done_callback(self.settle)
        self.protocol.finish_waiting(self)
