"""The access log of an origin or a proxy: every request recorded cheaply, written in batches.

A hit answered below ASGI costs a few microseconds, so the request path only appends a tuple
of values it already holds (the raw target, the response head it wrote, the request's header
list) to a list; a task formats the pending records (`outpost.logformat`) every
`FLUSH_SECONDS` and writes them in one call from a thread, so a slow disk or reader never
stalls the event loop. What waits is bounded (`max_pending` records): beyond it records are
dropped and counted, never queued without limit. Lines go to standard output (`-`) or to a file
opened for appending; `reopen()` (SIGHUP or SIGUSR1, for logrotate) opens the path again.
Several worker processes may append to one file: each write is whole lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Final

from starlette.types import Message, Receive, Scope, Send

from outpost.hangup import on_hangup
from outpost.logformat import (
    DASH,
    FORMATS,
    MEMO_BYTES,
    Access,
    clean,
    escape_target,
    frontier_template,
    frontier_time,
    json_line,
    squid_result,
    squid_start,
    squid_template,
)

__all__ = ["ACCESS_NOTE", "STDOUT", "AccessLog", "logged", "open_access_log"]

STDOUT: Final = "-"
OFF: Final = ("", "off", "none")
FLUSH_SECONDS: Final = 0.25
MAX_PENDING: Final = 200_000
HIT_FIELDS: Final = 10  # the length of a record `hit` makes (a `request` record is shorter)
SLICE: Final = 1000  # records formatted between two turns of the event loop (~4 ms)

log = logging.getLogger("outpost.accesslog")

# What a request's handler learns for its log line (`upstream`, `attempts`, `result`): set per
# request by the server's logging wrapper; a task started while handling it shares the dict.
ACCESS_NOTE: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar(
    "outpost_access_note", default=None
)

Headers = Sequence[tuple[bytes, bytes]]


class AccessLog:
    def __init__(
        self,
        destination: str,
        format: str,
        *,
        max_pending: int = MAX_PENDING,
        on_dropped: Callable[[int], None] = lambda count: None,
    ) -> None:
        self.destination = destination
        self.line = FORMATS[format]
        self.hit_line = HIT_LINES[format]
        self.max_pending = max_pending
        self.on_dropped = on_dropped  # told how many records a full queue dropped
        self._pending: list[tuple[Any, ...]] = []
        self._fd: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._reopen = False
        self._forget: Callable[[], None] = lambda: None  # unregisters the SIGHUP callback

    # --- recording: on the request path, cheap ---------------------------------------------

    def hit(
        self,
        client: tuple[str, int] | None,
        method: bytes,
        target: bytes,
        head: bytes,
        size: int,
        started: float,
        headers: Headers,
        result: str = "TCP_MEM_HIT",
        note: dict[str, Any] | None = None,
    ) -> None:
        """A request answered below ASGI (a hit from memory; `TCP_CF_HIT`: by another
        request's fetch): `head` is the response head as written. With a `note`, the request
        started the fetch it waited for, and is recorded as `request` records one, with
        what the fetch noted (the upstream that answered); its result then comes from the
        note and the answer's Cache-Status, as for any request, and `result` is not used."""
        if note is not None:
            path, _, query = target.partition(b"?")
            scope = {
                "client": client,
                "method": method.decode("latin-1"),
                "raw_path": path,
                "query_string": query,
                "headers": headers,
            }
            self.request(scope, int(head[9:12]), size, started, _head_fields(head), note)
            return
        if len(self._pending) < self.max_pending:
            duration = time.perf_counter() - started
            host = client[0] if client else DASH
            frontier_id, if_modified_since = _request_fields(headers)  # keep no request object
            record = (
                time.time(),
                duration,
                host,
                method,
                target,
                head,
                size,
                frontier_id,
                if_modified_since,
                result,
            )
            self._pending.append(record)
        else:
            self.on_dropped(1)

    def request(
        self,
        scope: MutableMapping[str, Any],
        status: int,
        size: int,
        started: float,
        response_headers: Headers,
        note: dict[str, Any] | None = None,
    ) -> None:
        """A request answered through ASGI; `note` holds what the handler learnt (the upstream
        that answered, the attempts it took, a result code)."""
        if len(self._pending) < self.max_pending:
            self._pending.append(
                (
                    time.time(),
                    time.perf_counter() - started,
                    scope,
                    status,
                    size,
                    response_headers,
                    note,
                )
            )
        else:
            self.on_dropped(1)

    # --- writing: off the request path -----------------------------------------------------

    def start(self) -> None:
        """Open the destination and write every `FLUSH_SECONDS` from now on (in the event loop
        that serves requests). SIGUSR1 and SIGHUP (`outpost.hangup`) reopen the file."""
        self._open()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._flushing())
        self._forget = on_hangup(self.reopen)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGUSR1, self.reopen)

    async def stop(self) -> None:
        """Write what is pending and close."""
        self._forget()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._write(self.take())
        if self._fd is not None and self.destination != STDOUT:
            os.close(self._fd)
        self._fd = None

    def reopen(self) -> None:
        """Open the file again before the next write (logrotate moved it away)."""
        self._reopen = True

    def take(self) -> bytes:
        """The pending records, formatted, and the queue emptied."""
        pending, self._pending = self._pending, []
        return self._format(pending)

    def _format(self, records: list[tuple[Any, ...]]) -> bytes:
        line, hit_line = self.line, self.hit_line
        lines = [hit_line(*r) if len(r) == HIT_FIELDS else line(_request(*r)) for r in records]
        return ("\n".join(lines) + "\n").encode() if lines else b""

    async def _flushing(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            pending, self._pending = self._pending, []
            parts = []
            for start in range(0, len(pending), SLICE):  # a few ms at a time: the loop serves
                parts.append(self._format(pending[start : start + SLICE]))  # between slices
                await asyncio.sleep(0)
            chunk = b"".join(parts)
            if self._reopen:
                self._reopen = False
                await asyncio.to_thread(self._open)
            if chunk:
                await asyncio.to_thread(self._write, chunk)

    def _open(self) -> None:
        if self.destination == STDOUT:
            self._fd = 1
            return
        old = self._fd
        try:
            self._fd = os.open(self.destination, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            log.warning("cannot open the access log %s: %s", self.destination, exc)
            return
        if old is not None:
            os.close(old)

    def _write(self, chunk: bytes) -> None:
        if not chunk or self._fd is None:
            return
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:  # a full disk or a closed pipe loses these lines, not the server
            log.warning("writing the access log %s failed: %s", self.destination, exc)


async def logged(
    handle: Callable[[Scope, Receive, Send], Awaitable[None]],
    scope: Scope,
    receive: Receive,
    send: Send,
    log: AccessLog,
) -> None:
    """Run an ASGI `handle`r for an HTTP request and record it: status, body bytes, response
    fields, and what the handler noted (`ACCESS_NOTE`: the upstream that answered, the
    attempts it took; every task started while handling it shares the note)."""
    started = time.perf_counter()
    note: dict[str, object] = {}
    status, size, fields = 500, 0, ()

    async def logged_send(message: Message) -> None:
        nonlocal status, size, fields
        if message["type"] == "http.response.start":
            status, fields = message["status"], message.get("headers", ())
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))
        await send(message)

    token = ACCESS_NOTE.set(note)
    try:
        await handle(scope, receive, logged_send)
    finally:
        ACCESS_NOTE.reset(token)
        log.request(scope, status, size, started, fields, note)


def open_access_log(
    destination: str, format: str, on_dropped: Callable[[int], None] = lambda n: None
) -> AccessLog | None:
    """The access log a setting asks for, or None when it is off."""
    if destination.strip().lower() in OFF:
        return None
    return AccessLog(destination, format, on_dropped=on_dropped)


# --- records → `Access` ----------------------------------------------------------------------


# A request answered below ASGI is the common case of a busy cache: its line is made from the
# values recorded, without building an `Access` first (frontier and squid layouts).


def _frontier_hit(
    at: float,
    duration: float,
    client: str,
    method: bytes,
    target: bytes,
    head: bytes,
    size: int,
    frontier_id: str,
    if_modified_since: str,
    result: str,
) -> str:
    key = (client, method, target, head[9:12], size, frontier_id, if_modified_since, result)
    template = _templates.get(key)
    if template is None:
        template = _remember(
            target,
            key,
            frontier_template(
                client,
                method.decode("latin-1"),
                escape_target(target),
                int(head[9:12]),
                size,
                result + ":HIER_NONE",
                frontier_id,
                if_modified_since,
            ),
        )
    start, middle, end = template
    return start + frontier_time(at) + middle + str(int(duration * 1000)) + end


def _squid_hit(
    at: float,
    duration: float,
    client: str,
    method: bytes,
    target: bytes,
    head: bytes,
    size: int,
    frontier_id: str,
    if_modified_since: str,
    result: str,
) -> str:
    content_type = _in_head(_CONTENT_TYPE, head) or DASH
    key = (client, method, target, head[9:12], size, result, content_type)
    template = _templates.get(key)
    if template is None:
        rest = squid_template(
            client,
            result,
            int(head[9:12]),
            size,
            method.decode("latin-1"),
            escape_target(target),
            "HIER_NONE/-",
            clean(content_type),
        )
        template = _remember(target, key, (rest,))
    return squid_start(at, duration) + template[0]


_templates: dict[tuple[object, ...], tuple[str, ...]] = {}
TEMPLATE_LIMIT: Final = 10_000  # line templates kept for repeated requests


def _remember(target: bytes, key: tuple[object, ...], template: tuple[str, ...]) -> tuple[str, ...]:
    """Keep `template` for the next request like this one, unless its target is long (the
    client chooses it: memory stays bounded by TEMPLATE_LIMIT times MEMO_BYTES and the fields'
    own limits)."""
    if len(target) > MEMO_BYTES:
        return template
    if len(_templates) >= TEMPLATE_LIMIT:
        _templates.clear()
    _templates[key] = template
    return template


def _json_hit(*record: Any) -> str:
    return json_line(_hit(*record))


HIT_LINES: Final[dict[str, Callable[..., str]]] = {
    "frontier": _frontier_hit,
    "squid": _squid_hit,
    "json": _json_hit,
}


def _request_fields(headers: Headers) -> tuple[str, str]:
    """X-Frontier-Id and If-Modified-Since, in one pass (most requests carry neither)."""
    frontier_id = if_modified_since = DASH
    for name, value in headers:
        if name == b"x-frontier-id":
            frontier_id = clean(value.decode("latin-1"))
        elif name == b"if-modified-since":
            if_modified_since = clean(value.decode("latin-1"))
    return frontier_id, if_modified_since


def _hit(
    at: float,
    duration: float,
    client: str,
    method: bytes,
    target: bytes,
    head: bytes,
    size: int,
    frontier_id: str,
    if_modified_since: str,
    result: str,
) -> Access:
    return Access(
        at,
        duration,
        client,
        method.decode("latin-1"),
        escape_target(target),
        int(head[9:12]),
        size,
        result,
        _own_entry(_in_head(_CACHE_STATUS, head)),
        DASH,
        0,
        frontier_id,
        if_modified_since,
        _in_head(_CONTENT_TYPE, head) or DASH,
    )


def _request(
    at: float,
    duration: float,
    scope: MutableMapping[str, Any],
    status: int,
    size: int,
    response_headers: Headers,
    note: dict[str, Any] | None,
) -> Access:
    note = note or {}
    request_headers: Headers = scope.get("headers", ())
    target = scope.get("raw_path") or scope.get("path", "").encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    client = scope.get("client")
    own = _own_entry(_field(response_headers, b"cache-status"))
    return Access(
        time=at,
        duration=duration,
        client=client[0] if client else DASH,
        method=str(scope.get("method", DASH)),
        target=escape_target(target),
        status=status,
        bytes=size,
        result=note.get("result") or squid_result(own, status),
        cache_status=own,
        upstream=note.get("upstream", DASH),
        attempts=int(note.get("attempts", 0)),
        frontier_id=clean(_field(request_headers, b"x-frontier-id")),
        if_modified_since=clean(_field(request_headers, b"if-modified-since")),
        content_type=clean(_field(response_headers, b"content-type")),
    )


def _head_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header fields of a response head as written (status line first)."""
    fields = []
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            fields.append((name.lower(), value.strip()))
    return fields


def _field(headers: Headers, name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


_CACHE_STATUS: Final = re.compile(rb"\r\ncache-status: *([^\r]*)", re.IGNORECASE)
_CONTENT_TYPE: Final = re.compile(rb"\r\ncontent-type: *([^\r]*)", re.IGNORECASE)


def _in_head(field: re.Pattern[bytes], head: bytes) -> str:
    """A field's value in a response head as written (one regex search, in C)."""
    found = field.search(head)
    return found.group(1).decode("latin-1") if found else ""


def _own_entry(cache_status: str) -> str:
    """This cache's entry of a Cache-Status chain: the last one."""
    return cache_status.rpartition(",")[2].strip()
