"""The origin's HTTP endpoints: the read API (one handler over `outpost.urls`) and the writes.

Reads: parse the URL into a typed query, run it through `Reads` in a worker thread, and answer
with the caching headers of its TTL class, a version ETag, Last-Modified, and gzip for larger
JSON. Writes: authorise, bound and parse the body, apply it in one transaction.
"""

from __future__ import annotations

import base64
import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from anyio import to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from origin.auth import Action, TokenBook
from origin.feed import FeedWatcher, feed_answer
from origin.inputs import (
    parse_global_tag,
    parse_iovs,
    parse_new_tag,
    parse_object_type,
    parse_run_record,
)
from origin.metrics import OriginMetrics, route_label
from origin.query.conditional import (
    content_etag,
    gzip_etag,
    http_date,
    is_not_modified,
    matched_etag,
    version_etag,
)
from origin.query.encode import encode_answer
from origin.query.ttl import TTLPolicy, ttl_class
from origin.reads import Head, Reads
from origin.writes import Writes
from outpost.coding import accepts_gzip
from outpost.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from outpost.urls import (
    Payload,
    Query,
    RunQuery,
    TableQuery,
    format_time,
    parse,
    parse_feed,
)

__all__ = ["Api"]

JSON = "application/json"
OCTETS = "application/octet-stream"


@dataclass
class Api:
    reads: Reads
    writes: Writes
    tokens: TokenBook
    ttl: TTLPolicy
    metrics: OriginMetrics
    clock: Callable[[], int]
    feed: FeedWatcher
    gzip_min_bytes: int = 1024
    max_body_bytes: int = 64 * 1024 * 1024

    # --- reads -----------------------------------------------------------------------------

    async def read(self, request: Request) -> Response:
        query = parse(request.url.path, request.scope["query_string"].decode("latin-1"))
        canonical = query.url()
        if_none_match = request.headers.get("if-none-match")
        if_modified_since = request.headers.get("if-modified-since")
        is_head = request.method == "HEAD"

        def fresh_enough(head: Head) -> bool:
            if is_head and isinstance(query, Payload):
                return True  # the size is in the head row; the bytes are not needed
            if head.version is None and not isinstance(query, Payload):
                return False  # content ETag: needs the body
            etag = _etag(query, canonical, head)
            return is_not_modified(if_none_match, if_modified_since, etag, head.version)

        started = time.perf_counter()
        result = await to_thread.run_sync(self.reads.read, query, fresh_enough)
        self.metrics.query_seconds.labels(route_label(request.url.path)).observe(
            time.perf_counter() - started
        )
        head = result.head
        ttl = ttl_class(query, locked=head.locked, now=self.clock(), policy=self.ttl)
        headers = {"cache-control": self.ttl.cache_control(ttl)}
        if head.version is not None:
            headers["last-modified"] = http_date(head.version)

        if isinstance(query, Payload):
            headers["etag"] = _etag(query, canonical, head)
            if result.rows is None and not is_head:
                return Response(status_code=304, headers=headers)
            headers["repr-digest"] = _repr_digest(query.hash)
            headers["content-type"] = OCTETS
            if is_head:
                headers["content-length"] = str(head.row["size"])
                return Response(b"", headers=headers)
            if result.path is not None:  # sent by the server from the file where it can
                return FileResponse(result.path, headers=headers, media_type=OCTETS)
            return Response(result.data, headers=headers)

        headers["vary"] = "Accept-Encoding"
        if result.rows is None:
            headers["etag"] = matched_etag(if_none_match, _etag(query, canonical, head))
            return Response(status_code=304, headers=headers)
        access = self.reads.access
        columns = access.selected(query) if isinstance(query, TableQuery) else ()
        body = encode_answer(
            query, head.row, result.rows, columns=columns, max_rows=access.max_rows
        )
        etag = _etag(query, canonical, head) if head.version is not None else content_etag(body)
        if head.version is None and is_not_modified(if_none_match, None, etag, None):
            return Response(
                status_code=304, headers={**headers, "etag": matched_etag(if_none_match, etag)}
            )
        if len(body) >= self.gzip_min_bytes and accepts_gzip(
            request.headers.get("accept-encoding")
        ):
            body = gzip.compress(body, compresslevel=6, mtime=0)
            etag = gzip_etag(etag)
            headers["content-encoding"] = "gzip"
        headers["etag"] = etag
        headers["content-type"] = JSON
        if is_head:
            headers["content-length"] = str(len(body))
            return Response(b"", headers=headers)
        return Response(body, headers=headers)

    async def changes(self, request: Request) -> Response:
        """The change feed (`origin.feed`): entries after `after`, long-polled with `wait`."""
        query = parse_feed(request.scope["query_string"].decode("latin-1"))
        head, rows = await to_thread.run_sync(self.reads.changes, query.after, query.limit)
        if query.after > head:
            raise Conflict(
                f"position {query.after} is beyond the feed's head {head} (another database, "
                "or one restored from an older copy): read the current state again and follow "
                f"the feed from {head}",
                accepted=f"after=0..{head}",
                headers={"outpost-feed-head": str(head)},
            )
        if not rows and query.wait:
            await self.feed.wait_beyond(query.after, query.wait)
            head, rows = await to_thread.run_sync(self.reads.changes, query.after, query.limit)
        body = feed_answer(query.after, head, rows)
        headers = {"cache-control": "no-store", "content-type": JSON}
        if request.method == "HEAD":
            return Response(b"", headers={**headers, "content-length": str(len(body))})
        return Response(body, headers=headers)

    # --- writes ----------------------------------------------------------------------------

    async def post_payload(self, request: Request) -> Response:
        who = self.tokens.authorize(request.headers.get("authorization"), Action.UPLOAD_PAYLOAD)
        extra = set(request.query_params) - {"object_type"}
        if extra:
            raise BadRequest(f"unknown parameters {sorted(extra)}", accepted=["object_type"])
        object_type = parse_object_type(request.query_params.get("object_type", "blob"))
        data = await self._body(request)
        digest, created = await to_thread.run_sync(
            self.writes.put_payload, data, object_type, who.name
        )
        return _json(
            {"hash": digest, "size": len(data), "created": created}, 201 if created else 200
        )

    async def post_tag(self, request: Request) -> Response:
        principal = self.tokens.authenticate(request.headers.get("authorization"))
        tag = parse_new_tag(await self._json(request))
        principal.require(Action.WRITE_TAG, tag.name)
        created = await to_thread.run_sync(self.writes.create_tag, tag, principal.name)
        return _json({"name": tag.name, "created": created}, 201 if created else 200)

    async def post_iovs(self, request: Request) -> Response:
        name = request.path_params["tag"]
        who = self.tokens.authorize(request.headers.get("authorization"), Action.WRITE_TAG, name)
        batch = parse_iovs(await self._json(request))
        inserted = await to_thread.run_sync(self.writes.append_iovs, name, batch, who.name)
        return _json({"tag": name, "inserted": len(batch), "insertion_time": inserted}, 201)

    async def post_lock(self, request: Request) -> Response:
        name = request.path_params["tag"]
        who = self.tokens.authorize(request.headers.get("authorization"), Action.LOCK_TAG, name)
        locked = await to_thread.run_sync(self.writes.lock_tag, name, who.name)
        return _json({"tag": name, "state": "locked", "changed": locked}, 200)

    async def put_global_tag(self, request: Request) -> Response:
        name = request.path_params["gt"]
        who = self.tokens.authorize(request.headers.get("authorization"), Action.EDIT_GLOBAL_TAG)
        change = parse_global_tag(await self._json(request))
        created = await to_thread.run_sync(self.writes.put_global_tag, name, change, who.name)
        return _json({"name": name, "created": created}, 201 if created else 200)

    async def post_run_record(self, request: Request) -> Response:
        """Run control records which conditions a run was taken with (`Writes.put_run_record`)."""
        who = self.tokens.authorize(request.headers.get("authorization"), Action.WRITE_RUN_RECORD)
        query = parse(request.url.path, request.scope["query_string"].decode("latin-1"))
        if not isinstance(query, RunQuery):  # the route admits nothing else
            raise NotFound(f"{request.url.path[:200]!r} is not a run", accepted="/v1/runs/{run}")
        post = parse_run_record(await self._json(request))
        written = await to_thread.run_sync(self.writes.put_run_record, query.run, post, who.name)
        document = {
            "run": written.run,
            "created": written.created,
            "digest": written.digest,
            "snapshot": format_time(written.snapshot),
        }
        return _json(document, 201 if written.created else 200)

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise BadRequest(f"Content-Length {declared[:40]!r} is not a number")
            if int(declared) > self.max_body_bytes:
                raise self._too_large()
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"body is over {self.max_body_bytes} bytes", accepted=f"<= {self.max_body_bytes} bytes"
        )

    async def _json(self, request: Request) -> Any:
        body = await self._body(request)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body is not JSON: {exc}", accepted="a JSON object") from None


def _etag(query: Query, canonical: str, head: Head) -> str:
    if isinstance(query, Payload):
        return f'"{query.hash}"'
    assert head.version is not None
    return version_etag(canonical, head.version)


def _repr_digest(hex_digest: str) -> str:
    return f"sha-256=:{base64.b64encode(bytes.fromhex(hex_digest)).decode()}:"


def _json(document: Any, status: int) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type=JSON)
