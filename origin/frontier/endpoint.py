"""The ASGI route of the Frontier protocol: `GET|HEAD /{servlet}/Frontier[/|?]<params>`.

Thin: it reads the request (parameters, X-Frontier-Id, conditional and cache headers), takes a
slot of the Frontier bulkhead (or answers 503), plans each payload in the planner's processes
(p1, SQL budget, encoding, SQL guard), runs the plans through `FrontierDatabase` on the
bulkhead's threads, all under one deadline, and writes the envelope with the servlet's caching
headers.
Every answer is HTTP 200 with a Content-Length, errors included (in `<global_error>` or the
payload's quality), as frontier_client expects; a 304 when the client's copy is current; a 503
with Retry-After when the bulkhead is full.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from origin.frontier.bulkhead import Bulkhead
from origin.frontier.caching import (
    EPOCH,
    ERROR_MAX_AGE,
    cache_control,
    error_max_age,
    max_age,
    not_modified,
    ttl_of,
    validators,
)
from origin.frontier.envelope import (
    PayloadAnswer,
    pack,
    render,
    render_global_error,
)
from origin.frontier.limits import Deadline
from origin.frontier.params import FrontierError
from origin.frontier.planner import PlannedPayload, Planner, Rules
from origin.frontier.run import Execution, FrontierDatabase
from origin.metrics import OriginMetrics
from origin.query.ttl import TTLClass, TTLPolicy

__all__ = ["FrontierEndpoint"]

log = logging.getLogger("outpost.origin.frontier")

CONTENT_TYPE = "text/xml;charset=US-ASCII"  # what Tomcat sends for the servlet's text/xml, US-ASCII
ROUTE = "/Frontier"


class FrontierEndpoint:
    def __init__(
        self,
        database: FrontierDatabase,
        *,
        ttl: TTLPolicy,
        clock: Callable[[], int],
        metrics: OriginMetrics,
        require_id: bool = False,
        bulkhead: Bulkhead | None = None,
        planner: Planner | None = None,
    ) -> None:
        self.database = database
        self.ttl = ttl
        self.clock = clock
        self.metrics = metrics
        self.require_id = require_id
        self.bulkhead = bulkhead or Bulkhead(2, 0.25)
        self.planner = planner or Planner(Rules(database.dialect, database.schema), 2)

    async def handle(self, request: Request) -> Response:
        async with self.bulkhead.slot():
            return await self._handle(request)

    async def _handle(self, request: Request) -> Response:
        deadline = Deadline.after(self.database.timeout, time.monotonic())
        raw = raw_params(request.scope)
        frontier_id = request.headers.get("x-frontier-id")
        request_cache_control = request.headers.get("cache-control")
        who = f"{frontier_id or 'anonymous'} at {request.client.host if request.client else '?'}"
        is_head = request.method == "HEAD"
        try:
            if not raw:
                raise FrontierError("no query")
            if frontier_id is None:
                if self.require_id:
                    raise FrontierError("X-frontier-id header missing")
                log.info("Frontier request without X-Frontier-Id, served as anonymous (%s)", who)
            # parsing SQL is CPU work that holds the GIL: in the planner's own processes
            payloads = await self.planner.plan(raw, deadline)
        except FrontierError as exc:
            log.warning("Frontier request refused (%s): %s", who, exc)
            headers = {"cache-control": cache_control(ERROR_MAX_AGE, request_cache_control)}
            if frontier_id is None:  # the answer may be about this request's missing header
                headers = {"cache-control": "no-store"}
            return _answer(render_global_error(str(exc)), headers, is_head)

        for index, payload in enumerate(payloads):
            if payload.plan.error is not None:
                log.warning(
                    "Frontier payload %d of %d refused (%s): %s",
                    index + 1,
                    len(payloads),
                    who,
                    payload.plan.error,
                )
                break  # later payloads are not answered

        now = self.clock()
        if_none_match = request.headers.get("if-none-match")
        if_modified_since = request.headers.get("if-modified-since")

        def fresh_enough(version: int | None) -> bool:
            found = validators(
                version, now=now, settle_seconds=self.ttl.settle_seconds, canonical=raw
            )
            return found is not None and not_modified(found, if_none_match, if_modified_since)

        started = time.perf_counter()
        execution = await self.bulkhead.run(
            self.database.execute, [p.plan for p in payloads], fresh_enough, deadline
        )
        self.metrics.query_seconds.labels(ROUTE).observe(time.perf_counter() - started)
        return self._respond(payloads, execution, raw, now, request_cache_control, who, is_head)

    def _respond(
        self,
        payloads: list[PlannedPayload],
        execution: Execution,
        raw: str,
        now: int,
        request_cache_control: str | None,
        who: str,
        is_head: bool,
    ) -> Response:
        found = validators(
            execution.version, now=now, settle_seconds=self.ttl.settle_seconds, canonical=raw
        )
        ttl = ttl_of([p.command.param("ttl") for p in payloads])
        headers = {"cache-control": cache_control(self._max_age(ttl), request_cache_control)}
        if found is not None:
            headers["last-modified"] = found.last_modified
            headers["etag"] = found.etag
        if execution.not_modified:
            return Response(status_code=304, headers=headers)

        answers = []
        for index, outcome in enumerate(execution.outcomes):
            payload = payloads[index]
            command = payload.command
            if outcome.error is None:
                assert outcome.stream is not None
                packed = pack(outcome.stream, payload.level)
                answers.append(
                    PayloadAnswer(
                        command.obj_name,
                        command.obj_version,
                        command.encoding,
                        packed,
                        outcome.records,
                    )
                )
                continue
            if payload.plan.error is None:  # refusals were logged when planned
                log.warning(
                    "Frontier payload %d of %d failed (%s): %s",
                    index + 1,
                    len(payloads),
                    who,
                    outcome.error,
                )
            # The servlet's encoder exists once the encoding is known: its (empty) data and md5.
            data = pack(outcome.stream or b"", payload.level) if payload.encoded else None
            answers.append(
                PayloadAnswer(
                    command.obj_name,
                    command.obj_version,
                    command.encoding,
                    data,
                    error=outcome.error,
                )
            )
            headers = {
                "cache-control": cache_control(error_max_age(self.ttl), request_cache_control),
                "last-modified": EPOCH,
            }
        return _answer(render(answers, len(payloads)), headers, is_head)

    def _max_age(self, ttl: TTLClass) -> int:
        return max_age(ttl, self.ttl)


def raw_params(scope: Scope) -> str:
    """The still-encoded parameters: the query string, else the path after `/Frontier/`."""
    query: bytes = scope.get("query_string") or b""
    if query:
        return query.decode("latin-1")
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    parts = raw_path.split(b"?", 1)[0].split(b"/", 3)
    return parts[3].decode("latin-1") if len(parts) > 3 else ""


def _answer(body: bytes, headers: dict[str, str], is_head: bool) -> Response:
    headers = {**headers, "content-type": CONTENT_TYPE}
    if is_head:
        return Response(b"", headers={**headers, "content-length": str(len(body))})
    return Response(body, headers=headers)
