"""`/_outpost/*`: health, metrics and status for operators; flush, warm, purge, attest
(`proxy.attest`) and register for run control and child proxies.

Who may do what (docs/security.md, "Run control's authority and secrets"):
- flush, warm, purge, attest: run control's bearer token, or a command signed by the parent for this
  proxy (`proxy.core.signing`, checked with `tree_public_key`);
- register: the registration token, which can do nothing else.
No credential: 401; a wrong one: 403. Status, metrics and errors show URLs redacted.
The dashboard (`proxy.ui`: `/_outpost/ui/`, `/_outpost/dashboard`) needs no token, like status.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request as HTTPRequest
from starlette.responses import Response
from starlette.routing import Route, Router

from outpost.errors import BadRequest, Forbidden, NotFound, OutpostError, Unauthorized, echo
from outpost.redact import redact_url
from outpost.urls import Resolve, is_plain_name
from proxy.attest import attest as attest_tree
from proxy.attest import parse_attest
from proxy.core.directives import CacheControl
from proxy.core.epochs import EpochOutOfRange, next_epoch
from proxy.core.history import BadFigures, Figures, parse_figures
from proxy.core.keys import primary_key, variant_key
from proxy.core.shared import CODING_REQUESTS, FORWARDED_FIELDS
from proxy.core.signing import SIGNATURE_HEADER, BadSignature, Verifier
from proxy.flights import Request
from proxy.partials import PART_SUFFIX
from proxy.storage.base import Store, VaryMarker
from proxy.ui import ui_handlers

if TYPE_CHECKING:
    from proxy.app import ProxyApp

__all__ = ["admin_routes"]

log = logging.getLogger("outpost.proxy.admin")

MAX_ADMIN_BODY = 4 * 1024 * 1024
WARM_CONCURRENCY = 8
MAX_PURGE_URLS = 1000  # one request's; a larger purge is several requests (or a flush)
PURGE_CONCURRENCY = 8
MAX_REFRESH_NAMES = 100_000  # caches a warm may name to refresh (a whole farm)
MAX_CHILD_URL = 2048  # a child's advertised URL, as registered (and shown)


def _json(document: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type="application/json")


def _error(error: OutpostError) -> Response:
    return Response(
        error.body(),
        status_code=error.status,
        media_type="application/json",
        headers={"cache-control": "no-store", **error.headers},
    )


def admin_routes(app: ProxyApp) -> Router:
    settings = app.settings

    verifier = (
        Verifier(
            settings.tree_public_key,
            settings.signature_window_seconds,
            app.registry.nonces(settings.signature_window_seconds),
        )
        if settings.tree_public_key
        else None
    )

    def refused(request: HTTPRequest, reason: str, error: OutpostError) -> OutpostError:
        app.metrics.admin_refused.labels(request.url.path.rsplit("/", 1)[-1], reason).inc()
        return error

    def bearer(request: HTTPRequest, expected: str | None, what: str, variable: str) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not token:
            raise refused(
                request,
                "token",
                Unauthorized(
                    f"{what} needs a bearer token",
                    accepted=f"Authorization: Bearer ${variable}",
                    headers={"WWW-Authenticate": f'Bearer realm="outpost {what}"'},
                ),
            )
        if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
            raise refused(request, "token", Forbidden(f"wrong {what} token", accepted=variable))

    async def command(request: HTTPRequest) -> None:
        """Run control's token, or the parent's signature over exactly this request."""
        signature = request.headers.get(SIGNATURE_HEADER)
        if signature is None:
            bearer(request, settings.run_control_token, "run control", "OUTPOST_RUN_CONTROL_TOKEN")
            return
        if verifier is None:
            raise refused(
                request,
                "signature",
                Forbidden(
                    "signed command, but this proxy has no tree_public_key to check it",
                    accepted="OUTPOST_PROXY_TREE_PUBLIC_KEY",
                ),
            )
        raw = await request.body()
        try:
            verifier.verify(signature, "POST", request.url.path, app.name, raw, time.time())
        except BadSignature as exc:
            raise refused(
                request, "signature", Forbidden(str(exc), accepted="a command signed by the parent")
            ) from None

    async def body(request: HTTPRequest) -> dict[str, Any]:
        raw = await request.body()  # starlette keeps it: `command` may have read it already
        if len(raw) > MAX_ADMIN_BODY:
            raise BadRequest(f"body over {MAX_ADMIN_BODY} bytes")
        try:
            document = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"body is not JSON: {exc}", accepted="a JSON object") from None
        if not isinstance(document, dict):
            raise BadRequest("body must be a JSON object")
        return document

    def children() -> list[Any]:
        return app.registry.children(expiry=settings.child_expiry_seconds)

    async def healthz(request: HTTPRequest) -> Response:
        return _json({"status": "ok", "name": app.name})

    async def metrics(request: HTTPRequest) -> Response:
        app.metrics.cache_bytes.set(app.l1.bytes)
        app.metrics.cache_entries.set(len(app.l1))
        app.metrics.epoch.set(app.epoch.value)
        app.metrics.children.set(len(children()))
        return Response(generate_latest(app.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def status(request: HTTPRequest) -> Response:
        upstreams = app.upstreams.health()
        if request.query_params.get("probe") in ("1", "true"):  # `outpost status` asks this
            for url, probed in (await app.upstreams.probe()).items():
                upstreams[url]["probe"] = probed
        redis = None
        if app.redis is not None:
            redis = {"url": app.redis.url, "up": app.store.l2_up}  # redacted by RedisStore
        return _json(
            {
                "name": app.name,
                "url": redact_url(settings.url),
                "epoch": app.epoch.value,
                "upstreams": upstreams,
                "parent": redact_url(settings.parent) if settings.parent else None,
                "children": [
                    {"name": c.name, "url": redact_url(c.url), "last_seen": c.last_seen}
                    for c in children()
                ],
                "cache": {
                    "entries": len(app.l1),
                    "bytes": app.l1.bytes,
                    "max_bytes": settings.cache_size,
                },
                "hit_ratio": round(app.metrics.hit_ratio(), 4),
                "redis": redis,
                "feed": app.feed.status() if app.feed is not None else None,
            }
        )

    async def register(request: HTTPRequest) -> Response:
        bearer(request, settings.register_token, "register", "OUTPOST_PROXY_REGISTER_TOKEN")
        document = await body(request)
        name, url = document.get("name"), document.get("url")
        if not isinstance(name, str) or not is_plain_name(name):
            raise BadRequest(
                "register needs a plain `name`",
                accepted={"name": "node-12", "url": "http://host:port"},
            )
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise BadRequest("register needs the child's `url`", accepted="http://host:port")
        if len(url) > MAX_CHILD_URL:
            raise BadRequest(f"url is {len(url)} characters", accepted=f"<= {MAX_CHILD_URL}")
        if name == app.name or url.rstrip("/") == settings.url.rstrip("/"):
            raise BadRequest(
                f"{name} at {url} is this proxy itself: a child needs its own name and URL",
                accepted="--name and --advertise-url of the child",
            )
        figures, refusal = _figures(document.get("figures"))
        app.registry.register(name, url, figures=figures)
        if figures is not None:
            app.dashboard.heard(name, figures)
        answer: dict[str, Any] = {"name": app.name, "epoch": app.epoch.value}
        if refusal is not None:  # registered all the same: figures only feed the dashboard
            answer["figures"] = refusal
        return _json(answer)

    async def flush(request: HTTPRequest) -> Response:
        await command(request)
        document = await body(request)
        run = document.get("run")
        if not isinstance(run, int) or isinstance(run, bool) or run < 0:
            raise BadRequest("flush needs the coming run number", accepted={"run": 123456})
        requested = document.get("epoch")
        if requested is not None and (
            not isinstance(requested, int) or isinstance(requested, bool) or requested < 0
        ):
            raise BadRequest("epoch must be a non-negative integer")
        path = document.get("path", [])
        if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
            raise BadRequest("path must be the list of proxies the flush came through")
        if app.name in path:  # a loop in the tree: this proxy has this flush already
            return _json({"name": app.name, "run": run, "acked": 0, "caches": [], "failed": []})
        try:
            wanted = next_epoch(app.epoch.value, requested, settings.max_epoch_step)
        except EpochOutOfRange as exc:
            raise refused(
                request,
                "epoch",
                BadRequest(
                    str(exc), accepted=f"at most the current epoch + {settings.max_epoch_step}"
                ),
            ) from None
        epoch = app.epoch.raise_to(wanted)
        await app.share_epoch(epoch)
        forwarded = {"run": run, "epoch": epoch, "path": [*path, app.name]}
        result = await app.fan_out.send(children(), "/_outpost/flush", forwarded)
        app.dashboard.flushed(run, epoch, 1 + result.acked, result.failed)
        return _json(
            {
                "name": app.name,
                "run": run,
                "epoch": epoch,
                "acked": 1 + result.acked,
                "caches": [app.name, *result.caches],
                "failed": result.failed,
            }
        )

    async def warm(request: HTTPRequest) -> Response:
        await command(request)
        document = await body(request)
        urls = await _warm_urls(app, document)
        refresh = _refresh_names(document.get("refresh", []))
        if app.name in refresh:  # `outpost prepare --repair`: this cache held other bytes
            await _purge(app.store, [primary_key(*url.partition("?")[::2]) for url in urls])
        warmed, failed_urls = await _warm(app, urls)
        forwarded: dict[str, Any] = {"urls": urls}
        if refresh:
            forwarded["refresh"] = sorted(refresh)
        result = await app.fan_out.send(children(), "/_outpost/warm", forwarded)
        return _json(
            {
                "name": app.name,
                "warmed": warmed,
                "failed_urls": failed_urls,
                "acked": 1 + result.acked,
                "caches": [app.name, *result.caches],
                "failed": result.failed,
            }
        )

    async def purge(request: HTTPRequest) -> Response:
        await command(request)
        document = await body(request)
        urls = _purge_urls(document.get("urls"), settings.max_header_bytes)
        path = document.get("path", [])
        if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
            raise BadRequest("path must be the list of proxies the purge came through")
        if app.name in path:  # a loop in the tree: this proxy has this purge already
            return _json({"name": app.name, "acked": 0, "caches": [], "removed": {}, "failed": []})
        removed = await _purge(app.store, urls.values())
        forwarded = {"urls": list(urls), "path": [*path, app.name]}
        result = await app.fan_out.send(children(), "/_outpost/purge", forwarded)
        return _json(
            {
                "name": app.name,
                "urls": len(urls),
                "acked": 1 + result.acked,
                "caches": [app.name, *result.caches],
                "removed": {app.name: removed, **result.removed},
                "failed": result.failed,
            }
        )

    async def attest(request: HTTPRequest) -> Response:
        await command(request)
        wanted = parse_attest(await body(request))
        return _json(await attest_tree(app, wanted, children()))

    dashboard_page, dashboard_twin = ui_handlers(app)

    async def unknown(request: HTTPRequest) -> Response:
        raise NotFound(f"no admin route {request.url.path!r}", accepted=sorted(ROUTES))

    ROUTES = {
        "/_outpost/healthz": (healthz, ["GET", "HEAD"]),
        "/_outpost/metrics": (metrics, ["GET"]),
        "/_outpost/status": (status, ["GET"]),
        "/_outpost/register": (register, ["POST"]),
        "/_outpost/flush": (flush, ["POST"]),
        "/_outpost/warm": (warm, ["POST"]),
        "/_outpost/purge": (purge, ["POST"]),
        "/_outpost/attest": (attest, ["POST"]),
        "/_outpost/ui/": (dashboard_page, ["GET"]),  # proxy.ui: the cache-tree dashboard
        "/_outpost/ui": (dashboard_page, ["GET"]),
        "/_outpost/dashboard": (dashboard_twin, ["GET"]),  # its JSON twin
    }

    def guarded(handler: Any) -> Any:
        async def endpoint(request: HTTPRequest) -> Response:
            try:
                response: Response = await handler(request)
                return response
            except OutpostError as error:
                return _error(error)

        return endpoint

    routes = [Route(path, guarded(h), methods=m) for path, (h, m) in ROUTES.items()]
    routes.append(Route("/_outpost/{rest:path}", guarded(unknown)))
    return Router(routes=routes)


async def _warm_urls(app: ProxyApp, document: dict[str, Any]) -> list[str]:
    """The URLs to prefetch: as given, or a run's resolve answer and every payload it names."""
    if "urls" in document:
        urls = document["urls"]
        if not isinstance(urls, list) or not all(
            isinstance(u, str) and u.startswith("/") for u in urls
        ):
            raise BadRequest("urls must be a list of paths", accepted=["/v1/payloads/…"])
        for url in urls:  # each must be a target a shared fetch may send (BadRequest if not)
            primary_key(*url.partition("?")[::2])
        return list(dict.fromkeys(urls))
    globaltag, run = document.get("globaltag"), document.get("run")
    if not isinstance(globaltag, str) or not is_plain_name(globaltag) or not isinstance(run, int):
        raise BadRequest(
            "warm needs urls, or a globaltag and a run", accepted={"globaltag": "GT", "run": 1}
        )
    resolve = Resolve(globaltag, run).url()
    outcome = await _fetch(app, resolve)
    if outcome is None or outcome.status != 200:
        raise BadRequest(
            f"cannot resolve {resolve}: status {outcome.status if outcome else 'none'}"
        )
    try:
        records = orjson.loads(outcome.body)["records"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise BadRequest(f"{resolve} did not answer a resolve document") from None
    payloads = [f"/v1/payloads/{r['payload']}" for r in records if r.get("payload")]
    return [resolve, *dict.fromkeys(payloads)]


def _figures(value: Any) -> tuple[Figures | None, str | None]:
    """A heartbeat's optional `figures`: parsed, or None and why they were ignored."""
    if value is None:
        return None, None
    try:
        return parse_figures(value), None
    except BadFigures as exc:
        return None, f"ignored: {exc}"


def _refresh_names(names: Any) -> set[str]:
    """The caches a warm is to refresh: each drops the URLs first and fetches them again."""
    if not isinstance(names, list) or not all(
        isinstance(n, str) and is_plain_name(n) for n in names
    ):
        raise BadRequest("refresh must be a list of cache names", accepted=["node-12"])
    if len(names) > MAX_REFRESH_NAMES:
        raise BadRequest(f"refresh names {len(names)} caches", accepted=f"<= {MAX_REFRESH_NAMES}")
    return set(names)


async def _fetch(app: ProxyApp, url: str, coding: bytes = b"identity") -> Any:
    path, _, query = url.partition("?")
    key = primary_key(path, query)  # warm URLs are given raw, as a client sends them
    request = Request("GET", key, [(b"accept-encoding", coding)], CacheControl())
    outcome, _ = await app.engine.resolve(request)
    return outcome.entry


async def _warm(app: ProxyApp, urls: list[str]) -> tuple[int, list[str]]:
    gate = asyncio.Semaphore(WARM_CONCURRENCY)
    failed: list[str] = []

    async def one(url: str) -> None:
        async with gate:
            entry = await _fetch(app, url)
            if entry is not None and entry.vary:  # JSON answers: warm the gzip variant too
                await _fetch(app, url, b"gzip")
        if entry is None or entry.status >= 400:
            failed.append(url)

    await asyncio.gather(*(one(url) for url in urls))
    return len(urls) - len(failed), sorted(failed)


def _purge_urls(urls: Any, max_bytes: int) -> dict[str, str]:
    """The URLs of a purge (paths with their query, as clients send them), each mapped to its
    cache key; BadRequest naming the first one that is not a URL this proxy could have cached."""
    example = ["/v1/tags/T/iovs", "/v1/payloads/<sha256>"]
    if not isinstance(urls, list) or not urls:
        raise BadRequest("purge needs urls: a list of paths", accepted={"urls": example})
    if len(urls) > MAX_PURGE_URLS:
        raise BadRequest(
            f"purge of {len(urls)} URLs", accepted=f"at most {MAX_PURGE_URLS} URLs a request"
        )
    keys: dict[str, str] = {}
    for index, url in enumerate(urls):
        if not isinstance(url, str) or not url.startswith("/"):
            raise BadRequest(f"urls[{index}] {echo(url)} is not a path", accepted=example)
        if len(url.encode()) > max_bytes:  # longer than any request head this proxy takes
            size = len(url.encode())
            raise BadRequest(f"urls[{index}] is {size} bytes", accepted=f"<= {max_bytes} bytes")
        try:
            keys[url] = primary_key(*url.partition("?")[::2])
        except BadRequest as exc:
            raise BadRequest(f"urls[{index}]: {exc.detail}", accepted=exc.accepted) from None
    return keys


async def _purge(store: Store, keys: Iterable[str]) -> int:
    """Remove each key from every tier of `store`, a varied answer with all its variants; how
    many stored answers went (a varied answer's marker is not one)."""
    gate = asyncio.Semaphore(PURGE_CONCURRENCY)

    async def one(key: str) -> int:
        async with gate:
            return await _purge_key(store, key)

    return sum(await asyncio.gather(*(one(key) for key in dict.fromkeys(keys))))


async def _purge_key(store: Store, key: str) -> int:
    """Remove `key` and the variants stored under it: those its `VaryMarker` can select, or,
    with no marker (evicted or expired before its variants), the two codings of Outpost's own
    answers (`Vary: Accept-Encoding`). A field whose values are open (Accept, Accept-Language,
    X-Frontier-Id: no Outpost origin varies on them) can be named only by its absence; a log
    line says so."""
    marker = await store.get(key)
    vary = marker.vary if isinstance(marker, VaryMarker) else (b"accept-encoding",)
    candidates = [key, *dict.fromkeys(variant_key(key, vary, h) for h in CODING_REQUESTS)]
    candidates.append(key + PART_SUFFIX)  # a part kept of an object too large to store whole
    removed = 0
    for candidate in candidates:
        value = marker if candidate == key else await store.get(candidate)
        await store.delete(candidate)
        if value is not None and not isinstance(value, VaryMarker):
            removed += 1
    open_fields = [f.decode() for f in vary if f in FORWARDED_FIELDS and f != b"accept-encoding"]
    if open_fields:
        log.warning(
            "purge of %s: it varies on %s; variants for other values of it may remain until a "
            "flush makes them revalidate",
            echo(key),
            ", ".join(open_fields),
        )
    return removed
