"""The origin's ASGI app: `create_app(settings)` wires settings, database, tokens and routes.

The lifespan owns the database engines. A pure ASGI guard in front of the router refuses
oversized URLs before any parsing and counts every answer by route and status. Every error,
including the router's own 404 and 405, leaves as the JSON body of `outpost.errors`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import orjson
from anyio import to_thread
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import MetaData, Table
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from origin.api import Api
from origin.auth import TokenBook
from origin.db import Engines, create_engines
from origin.feed import FeedWatcher
from origin.frontier.bulkhead import Bulkhead
from origin.frontier.endpoint import FrontierEndpoint
from origin.frontier.params import is_frontier_path
from origin.frontier.planner import Planner, Rules
from origin.frontier.run import FrontierDatabase
from origin.metrics import OriginMetrics, route_label
from origin.payloadfiles import PayloadFiles
from origin.query.table import DEFAULT_TABLES, default_table_access
from origin.query.ttl import TTLPolicy
from origin.reads import Reads
from origin.settings import OriginSettings
from origin.ui import Browser
from origin.writes import Writes
from outpost import draining, hangup
from outpost.accesslog import AccessLog, logged, open_access_log
from outpost.config import SettingsError
from outpost.errors import (
    Conflict,
    MethodNotAllowed,
    NotFound,
    OutpostError,
    ServiceUnavailable,
    URITooLong,
)
from outpost.limits import limits_from
from outpost.urls import FEED_PATH, ROUTES

__all__ = ["create_app", "system_clock"]

log = logging.getLogger("outpost.origin")


def system_clock() -> int:
    """Microseconds since the epoch, UTC."""
    return time.time_ns() // 1000


def create_app(
    settings: OriginSettings,
    *,
    engines: Engines | None = None,
    clock: Callable[[], int] | None = None,
) -> Starlette:
    clock = clock or system_clock
    owned = engines is None
    engines = engines or create_engines(
        settings.db,
        statement_timeout_ms=settings.statement_timeout_ms,
        frontier=settings.frontier_limits(),
    )
    metrics = OriginMetrics()
    access = default_table_access(
        settings.query_tables,
        _reflect_extra(engines, settings.query_tables),
        settings.query_max_rows,
    )
    ttl = TTLPolicy(
        settings.ttl_short_seconds, settings.ttl_long_seconds, settings.snapshot_settle_seconds
    )
    files_dir = settings.payload_files_dir() if settings.payload_store == "files" else None
    files = None
    if files_dir is not None:
        try:
            files_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError(
                f"origin.payload_dir={str(files_dir)!r}: cannot be created ({exc.strerror})"
            ) from None
        files = PayloadFiles(files_dir)
    reads = Reads(engines.reader, access, files)
    feed = FeedWatcher(reads.feed_head, settings.feed_poll_seconds)
    api = Api(
        reads=reads,
        writes=Writes(engines.writer, clock, on_commit=feed.advanced, files=files),
        feed=feed,
        tokens=TokenBook.from_file(settings.tokens_file),
        ttl=ttl,
        metrics=metrics,
        clock=clock,
        gzip_min_bytes=settings.gzip_min_bytes,
        max_body_bytes=settings.max_body_bytes,
    )

    frontier_database = FrontierDatabase(
        engines.frontier,
        access,
        max_bytes=settings.frontier_max_bytes,
        statement_timeout_ms=settings.statement_timeout_ms,
    )
    rules = Rules(
        frontier_database.dialect,
        frontier_database.schema,
        max_payloads=settings.frontier_max_payloads,
        max_sql_bytes=settings.frontier_max_sql_bytes,
    )
    frontier = FrontierEndpoint(
        frontier_database,
        ttl=ttl,
        clock=clock,
        metrics=metrics,
        require_id=settings.frontier_require_id,
        bulkhead=Bulkhead(settings.frontier_concurrency, settings.frontier_queue_ms / 1000),
        planner=Planner(rules, settings.frontier_concurrency),
    )

    async def healthz(request: Request) -> Response:
        """Liveness: the process answers. Never touches the database (no restart loops)."""
        return Response(b'{"status":"ok"}', media_type="application/json")

    async def readyz(request: Request) -> Response:
        """Readiness: the database answers a read of every conditions table."""
        problem = await to_thread.run_sync(reads.problem)
        if problem is not None:
            log.warning("not ready: %s", problem)
            detail = f"the conditions database is not readable: {problem}"
            return error_response(ServiceUnavailable(detail, headers={"Retry-After": "5"}))
        return Response(b'{"status":"ready"}', media_type="application/json")

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    access_log = open_access_log(
        settings.access_log, settings.access_log_format, metrics.access_log_dropped.inc
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hangup.install()  # SIGHUP re-reads the tokens file instead of ending the process
        draining.on_stop_signals()  # long polls end at once when the server is told to stop
        forget = hangup.on_hangup(api.tokens.reload)
        if access_log is not None:
            access_log.start()
        try:
            yield
        finally:
            forget()
            if access_log is not None:
                await access_log.stop()
            await feed.close()
            if owned:
                engines.dispose()

    routes = [
        Route("/v1/payloads", api.post_payload, methods=["POST"]),
        Route("/v1/tags", api.post_tag, methods=["POST"]),
        Route("/v1/tags/{tag}/iovs", api.post_iovs, methods=["POST"]),
        Route("/v1/tags/{tag}/lock", api.post_lock, methods=["POST"]),
        Route("/v1/globaltags/{gt}", api.put_global_tag, methods=["PUT"]),
        Route("/v1/runs/{run}", api.post_run_record, methods=["POST"]),
        Route(FEED_PATH, api.changes, methods=["GET", "HEAD"]),
        Route("/v1/{rest:path}", api.read, methods=["GET", "HEAD"]),
        # the conditions browser: HTML pages of the read API's answers (origin.ui)
        *Browser(reads, ttl, clock).routes(),
        Route("/_outpost/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/_outpost/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/_outpost/metrics", metrics_endpoint, methods=["GET"]),
        # Frontier (frontier_client, fnget.py) under any servlet name, path or query form
        Route("/{servlet}/Frontier", frontier.handle, methods=["GET", "HEAD"]),
        Route("/{servlet}/Frontier/{params:path}", frontier.handle, methods=["GET", "HEAD"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            OutpostError: _outpost_error,
            HTTPException: _http_error,
            SQLAlchemyError: _database_error,
            Exception: _unexpected_error,
        },
    )
    app.add_middleware(
        Guard,
        max_url_bytes=settings.max_url_bytes,
        frontier_max_url_bytes=settings.frontier_max_url_bytes,
        metrics=metrics,
        access_log=access_log,
    )
    app.state.connection_limits = limits_from(settings)  # what the HTTP protocol enforces
    return app


def _reflect_extra(engines: Engines, names: tuple[str, ...]) -> dict[str, Table]:
    """Tables or views named in `query_tables` beyond the conditions tables, read from the DB."""
    extra = [n for n in names if n not in DEFAULT_TABLES]
    if not extra:
        return {}
    reflected = MetaData()
    try:
        reflected.reflect(bind=engines.reader, only=extra, views=True)
    except SQLAlchemyError as exc:
        raise NotFound(f"query_tables names {extra} not in the database: {exc}") from exc
    return dict(reflected.tables)


def error_response(error: OutpostError) -> Response:
    headers = {"cache-control": "no-store", **error.headers}
    return Response(
        error.body(), status_code=error.status, media_type="application/json", headers=headers
    )


async def _outpost_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OutpostError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return error_response(
            MethodNotAllowed(
                f"{request.method} is not allowed on {request.url.path[:200]}",
                accepted=allow.split(", "),
                headers={"Allow": allow},
            )
        )
    if exc.status_code == 404:
        return error_response(
            NotFound(f"no route {request.url.path[:200]!r}", accepted=list(ROUTES))
        )
    body = orjson.dumps(
        {"error": str(exc.detail).lower(), "detail": str(exc.detail), "accepted": None}
    )
    return Response(body, status_code=exc.status_code, media_type="application/json")


async def _database_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, IntegrityError):
        return error_response(Conflict("the write conflicts with a concurrent one; retry it"))
    log.warning("database error on %s: %s", request.url.path, exc)
    retryable = isinstance(exc, DBAPIError) and exc.connection_invalidated
    detail = "the conditions database is unavailable" + (" (connection lost)" if retryable else "")
    return error_response(ServiceUnavailable(detail, headers={"Retry-After": "5"}))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path)
    return error_response(OutpostError("internal error; this is a bug, please report it"))


class Guard:
    """Pure ASGI: refuse oversized URLs up front, count answers by route, method and status.

    Frontier URLs carry compressed SQL and have their own, larger limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_url_bytes: int,
        metrics: OriginMetrics,
        frontier_max_url_bytes: int | None = None,
        access_log: AccessLog | None = None,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.max_url_bytes = max_url_bytes
        self.frontier_max_url_bytes = frontier_max_url_bytes or max_url_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.access_log is None:
            await self._guarded(scope, receive, send)
        else:
            await logged(self._guarded, scope, receive, send, self.access_log)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = route_label(scope["path"])
        method = scope["method"] if scope["method"] in ("GET", "HEAD", "POST", "PUT") else "other"
        size = len(scope.get("raw_path") or scope["path"]) + len(scope["query_string"])
        frontier = is_frontier_path(scope["path"])
        limit = self.frontier_max_url_bytes if frontier else self.max_url_bytes
        if size > limit:
            error = URITooLong(f"URL is {size} bytes", accepted=f"<= {limit} bytes")
            self.metrics.requests.labels(route, method, "414").inc()
            await error_response(error)(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.requests.labels(route, method, str(message["status"])).inc()
            elif message["type"] == "http.response.body":
                self.metrics.response_bytes.labels(route).inc(len(message.get("body", b"")))
            await send(message)

        await self.app(scope, receive, counting_send)
