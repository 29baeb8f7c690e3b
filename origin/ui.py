"""The conditions browser: server-rendered HTML pages at `/ui/` over the read API (issue 19).

Every page is the HTML of read-API answers: it runs its JSON twin's query (and, for a page made
of several, the other queries it shows) through the read path (`Reads.view`, in one read
transaction) and renders the documents `encode` would serialise, so the page and its twin
(`<link rel="alternate">` and the footer's link) show the same content. Pages are plain GETs
that caches hold like any read: `Cache-Control` is the shortest TTL class of the answers a page
shows, an ETag of its bytes lets a revalidation after a flush cost a 304, and errors are
`no-store` HTML pages with the read API's status and message.

    /ui/[?q=GLOB]                      global tags                   /v1/globaltags
    /ui/globaltags/{gt}                map, history, forms           /v1/globaltags/{gt}
    /ui/diff?a=GT&b=GT[&a_snapshot=T][&b_snapshot=T]                 /v1/diff/globaltags?…
    /ui/tags[?name=GLOB][&payload_type=T]                            /v1/tags?…
    /ui/tags/{tag}                     timeline, corrections, IOVs   /v1/tags/{tag}/iovs?until=…
    /ui/resolve/{gt}?run=R[&lumi=L][&time=T][&snapshot=T]            /v1/resolve/{gt}?…
    /ui/payloads/{sha256}              metadata, first bytes         /v1/payloads/{sha256}/info
    /ui/runs[?since=R][&limit=N], /ui/runs/{run}                     /v1/runs…

A page's parameters are the twin's (parsed by `outpost.urls`, so nothing from the URL reaches
SQL but as a bound parameter); empty ones, as a form without JavaScript sends them, are left
out. No page has a script.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Final, TypeVar

import orjson
from anyio import to_thread
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from origin.query.conditional import content_etag, is_not_modified
from origin.query.ttl import TTLPolicy, shortest, ttl_class
from origin.reads import Answer, Reads, View
from origin.uiview import (
    corrections,
    format_bytes,
    format_key,
    hexdump,
    iovs_until,
    tag_timeline,
)
from outpost.errors import NotFound, OutpostError, ServiceUnavailable
from outpost.urls import (
    DEFAULT_LUMI,
    GlobalTagDiff,
    GlobalTagList,
    GlobalTagMap,
    History,
    Payload,
    PayloadInfo,
    Query,
    Resolve,
    RunList,
    RunQuery,
    TagInfo,
    TagIovs,
    TagList,
    format_time,
    parse,
    parse_name_glob,
    parse_params,
    parse_time,
)
from outpost.web import page

__all__ = ["HOME", "NAV", "Browser", "page_url"]

HOME: Final = "/ui/"
NAV: Final = ((HOME, "Global tags"), ("/ui/tags", "Tags"), ("/ui/runs", "Runs"))
MAX_ROWS: Final = 5000  # rows of one answer a page reads, draws and lists at most
TIMELINE_CHANNELS: Final = 40  # channels a tag's timeline draws at most
MAX_CORRECTIONS: Final = 1000  # corrections a tag's page lists, and superseded IOVs it draws
PREVIEW_BYTES: Final = 512
NO_STORE: Final = "no-store"

Q = TypeVar("Q")


def page_url(query: Query) -> str:
    """The canonical URL of the page that shows `query`'s answer: the twin's parameters, in
    the twin's canonical spelling."""
    _, mark, params = query.url().partition("?")
    suffix = mark + params
    match query:
        case GlobalTagList():
            return HOME
        case GlobalTagMap(name=name) | History(of="globaltags", name=name):
            return f"/ui/globaltags/{name}"
        case TagInfo(name=name) | TagIovs(tag=name) | History(name=name):
            return f"/ui/tags/{name}"
        case TagList():
            return "/ui/tags" + suffix
        case GlobalTagDiff():
            return "/ui/diff" + suffix
        case Resolve():
            return "/ui" + query.url().removeprefix("/v1")
        case Payload(hash=digest) | PayloadInfo(hash=digest):
            return f"/ui/payloads/{digest}"
        case RunList():
            return "/ui/runs" + suffix
        case RunQuery(run=run):
            return f"/ui/runs/{run}"
    raise TypeError(f"no page shows {query!r}")


class Links:
    """The URLs templates link to: pages (`page_url`) and the read API (`Query.url()`)."""

    page = staticmethod(page_url)

    @staticmethod
    def globaltag(name: str) -> str:
        return page_url(GlobalTagMap(name))

    @staticmethod
    def tag(name: str) -> str:
        return page_url(TagInfo(name))

    @staticmethod
    def payload(digest: str) -> str:
        return page_url(PayloadInfo(digest))

    @staticmethod
    def download(digest: str) -> str:
        return Payload(digest).url()

    @staticmethod
    def run(run: int) -> str:
        return page_url(RunQuery(run))

    @staticmethod
    def diff(a: str, b: str, a_snapshot: str | None = None, b_snapshot: str | None = None) -> str:
        return page_url(
            GlobalTagDiff(
                a,
                b,
                None if a_snapshot is None else parse_time(a_snapshot),
                None if b_snapshot is None else parse_time(b_snapshot),
            )
        )


@dataclass(frozen=True)
class Shown:
    """A page to render: its template, title, twin and context, and the answers it shows."""

    template: str
    title: str
    twin: str
    answers: Sequence[Answer]
    context: Mapping[str, Any]


class Browser:
    """The `/ui/` routes over the origin's read path."""

    def __init__(self, reads: Reads, ttl: TTLPolicy, clock: Callable[[], int]) -> None:
        self.reads = reads
        self.ttl = ttl
        self.clock = clock

    def routes(self) -> list[Route]:
        pages: list[tuple[str, Callable[[Request], Awaitable[Shown]]]] = [
            (HOME, self.globaltags),
            ("/ui/globaltags/{gt}", self.globaltag),
            ("/ui/diff", self.diff),
            ("/ui/tags", self.tags),
            ("/ui/tags/{tag}", self.tag),
            ("/ui/resolve/{gt}", self.resolve),
            ("/ui/payloads/{digest}", self.payload),
            ("/ui/runs", self.runs),
            ("/ui/runs/{run}", self.run),
            ("/ui/{rest:path}", self.unknown),
        ]
        return [
            Route(path, self._endpoint(build), methods=["GET", "HEAD"]) for path, build in pages
        ]

    # --- the pages -----------------------------------------------------------------------------

    async def globaltags(self, request: Request) -> Shown:
        found = parse_params(_without_blanks(request), ("q",))
        glob = parse_name_glob(found["q"], "q") if "q" in found else None
        query = GlobalTagList()
        (answer,) = await self._answers(lambda view: [view.answer(query)])
        everything = answer.document["globaltags"]
        shown = [g for g in everything if glob is None or fnmatchcase(g["name"], glob)]
        context = {
            "globaltags": shown,
            "total": len(everything),
            "q": found.get("q", ""),
            "truncated": answer.truncated,
        }
        return Shown("origin/globaltags.html", "Global tags", query.url(), [answer], context)

    async def globaltag(self, request: Request) -> Shown:
        query = _parsed(request, f"/v1/globaltags/{request.path_params['gt']}", GlobalTagMap)
        history = History("globaltags", query.name)
        answers = await self._answers(lambda view: [view.answer(query), view.answer(history)])
        gt, changes = answers[0].document, answers[1].document
        entries = []
        previous: str | None = None
        for entry in changes["history"]:
            before = previous or format_time(parse_time(entry["time"]) - 1)
            diff = Links.diff(query.name, query.name, before, entry["time"])
            entries.append({**entry, "diff": diff})
            previous = entry["time"]
        context = {
            "gt": gt,
            "resolve_action": _action(Resolve(query.name, run=0)),
            "diff_action": _action(GlobalTagDiff(query.name, query.name)),
            "history": entries,
            "history_next": _next_history(history, changes),
            "history_twin": history.url(),
            "truncated": answers[0].truncated,
        }
        return Shown("origin/globaltag.html", query.name, query.url(), answers, context)

    async def diff(self, request: Request) -> Shown:
        query = _parsed(request, "/v1/diff/globaltags", GlobalTagDiff)
        (answer,) = await self._answers(lambda view: [view.answer(query)])
        document = answer.document
        counts = {k: len(document[k]) for k in ("added", "removed", "changed")}
        rows = [
            *({"kind": "added", "a": None, "b": r["tag"], **r} for r in document["added"]),
            *({"kind": "removed", "a": r["tag"], "b": None, **r} for r in document["removed"]),
            *(
                {"kind": "changed", "a": r["a_tag"], "b": r["b_tag"], **r}
                for r in document["changed"]
            ),
        ]
        rows.sort(key=lambda r: (r["record"], r["label"]))
        title = f"{query.a} → {query.b}"
        context = {"diff": document, "counts": counts, "rows": rows}
        return Shown("origin/diff.html", title, query.url(), [answer], context)

    async def tags(self, request: Request) -> Shown:
        query = _parsed(request, "/v1/tags", TagList)
        (answer,) = await self._answers(lambda view: [view.answer(query)])
        context = {"found": answer.document, "query": query, "action": _action(query)}
        return Shown("origin/tags.html", "Tags", query.url(), [answer], context)

    async def tag(self, request: Request) -> Shown:
        info = _parsed(request, f"/v1/tags/{request.path_params['tag']}", TagInfo)
        history = History("tags", info.name)

        def read(view: View) -> list[Answer]:
            meta = view.answer(info)
            iovs = TagIovs(info.name, until=iovs_until(meta.document["time_type"]))
            return [meta, view.answer(iovs), view.answer(history)]

        answers = await self._answers(read)
        meta, iovs, changes = (a.document for a in answers)
        time_type = meta["time_type"]
        found = corrections(changes["history"])
        plot = tag_timeline(
            time_type,
            iovs["iovs"],
            found,
            page_url,
            max_channels=TIMELINE_CHANNELS,
            max_superseded=MAX_CORRECTIONS,
        )
        corrected = {(c.channel, c.since) for c in found}
        sizes = {iov["payload"]: iov["size"] for iov in iovs["iovs"]}
        context = {
            "tag": meta,
            "iovs": iovs["iovs"],
            "iovs_truncated": answers[1].truncated,
            "corrected": corrected,
            "corrections": found[-MAX_CORRECTIONS:],  # the newest
            "corrections_total": len(found),
            "timeline": plot,
            "history": changes["history"],
            "history_next": _next_history(history, changes),
            "history_twin": history.url(),
            "info_twin": info.url(),
            "payloads": len(sizes),
            "payload_bytes": sum(size or 0 for size in sizes.values()),
            "key": lambda value: format_key(value, time_type),
        }
        return Shown("origin/tag.html", info.name, answers[1].query.url(), answers, context)

    async def resolve(self, request: Request) -> Shown:
        query = _parsed(request, f"/v1/resolve/{request.path_params['gt']}", Resolve)
        (answer,) = await self._answers(lambda view: [view.answer(query)])
        records = answer.document["records"]
        sizes = {r["payload"]: r["size"] for r in records if r["payload"] is not None}
        context = {
            "resolved": answer.document,
            "records": records,
            "truncated": answer.truncated,
            "payloads": len(sizes),
            "total_bytes": sum(size or 0 for size in sizes.values()),
            "uncovered": sum(1 for r in records if r["payload"] is None),
        }
        title = f"{query.globaltag}, run {query.run}"
        return Shown("origin/resolve.html", title, query.url(), [answer], context)

    async def payload(self, request: Request) -> Shown:
        query = _parsed(request, f"/v1/payloads/{request.path_params['digest']}/info", PayloadInfo)

        def read(view: View) -> tuple[list[Answer], bytes]:
            return [view.answer(query)], view.payload_head(query.hash, PREVIEW_BYTES)

        answers, head = await to_thread.run_sync(self._read, read)
        info = answers[0].document
        context = {
            "info": info,
            "preview": hexdump(head),
            "preview_bytes": len(head),
            "download": Payload(query.hash).url(),
        }
        return Shown(
            "origin/payload.html", f"Payload {query.hash[:12]}…", query.url(), answers, context
        )

    async def runs(self, request: Request) -> Shown:
        query = _parsed(request, "/v1/runs", RunList)
        (answer,) = await self._answers(lambda view: [view.answer(query)])
        document = answer.document
        following = document["next"]
        more = None if following is None else page_url(RunList(since=following, limit=query.limit))
        context = {"runs": document["runs"], "more": more}
        return Shown("origin/runs.html", "Runs", query.url(), [answer], context)

    async def run(self, request: Request) -> Shown:
        query = _parsed(request, f"/v1/runs/{request.path_params['run']}", RunQuery)
        (answer,) = await self._answers(lambda view: [view.answer(query)])
        record = answer.document
        resolve = Resolve(
            record["globaltag"],
            run=record["run"],
            lumi=record["lumi"],
            snapshot=parse_time(record["snapshot"]),
        )
        context = {
            "record": record,
            "resolve": page_url(resolve),
            "attestation": _attestation(record["attestation"]),
            "attestation_json": orjson.dumps(
                record["attestation"], option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
            ).decode(),
            "total_bytes": sum(
                size or 0 for size in {r["payload"]: r["size"] for r in record["records"]}.values()
            ),
            "default_lumi": DEFAULT_LUMI,
        }
        return Shown("origin/run.html", f"Run {query.run}", query.url(), [answer], context)

    async def unknown(self, request: Request) -> Shown:
        raise NotFound(
            f"no page {request.url.path[:200]!r}",
            accepted=[href for href, _ in NAV],
        )

    # --- machinery -----------------------------------------------------------------------------

    def _read(self, read: Callable[[View], Q]) -> Q:
        with self.reads.view(MAX_ROWS) as view:
            return read(view)

    async def _answers(self, read: Callable[[View], list[Answer]]) -> list[Answer]:
        return await to_thread.run_sync(self._read, read)

    def _endpoint(
        self, build: Callable[[Request], Awaitable[Shown]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                shown = await build(request)
            except OutpostError as error:
                return _finish(request, _error_page(error), error.headers)
            except SQLAlchemyError:
                down = ServiceUnavailable(
                    "the conditions database is unavailable", headers={"Retry-After": "5"}
                )
                return _finish(request, _error_page(down), down.headers)
            now = self.clock()
            ttl = shortest(
                ttl_class(a.query, locked=a.head.locked, now=now, policy=self.ttl)
                for a in shown.answers
            )
            response = page(
                shown.template,
                title=shown.title,
                nav=NAV,
                home=HOME,
                cache_control=self.ttl.cache_control(ttl),
                twin=shown.twin,
                refresh=None,
                links=Links,
                format_key=format_key,
                format_bytes=format_bytes,
                **shown.context,
            )
            return _finish(request, response, {}, validate=True)

        return endpoint


def _error_page(error: OutpostError) -> Response:
    return page(
        "origin/error.html",
        title=error.error.capitalize(),
        nav=NAV,
        home=HOME,
        cache_control=NO_STORE,
        twin=None,
        refresh=None,
        status=error.status,
        error=error,
        accepted=_accepted(error.accepted),
    )


def _accepted(accepted: Any) -> list[str]:
    if accepted is None:
        return []
    if isinstance(accepted, list | tuple):
        return [str(item) for item in accepted]
    if isinstance(accepted, dict):
        return [f"{key}: {value}" for key, value in accepted.items()]
    return [str(accepted)]


def _finish(
    request: Request, response: Response, headers: Mapping[str, str], *, validate: bool = False
) -> Response:
    """The page with its ETag (a 304 when the client holds these bytes) and, for HEAD, no body."""
    body = bytes(response.body)
    out = {
        "cache-control": response.headers["cache-control"],
        "content-type": response.headers["content-type"],
        **headers,
    }
    if validate:
        etag = content_etag(body)
        out["etag"] = etag
        if is_not_modified(request.headers.get("if-none-match"), None, etag, None):
            del out["content-type"]
            return Response(status_code=304, headers=out)
    if request.method == "HEAD":
        out["content-length"] = str(len(body))
        return Response(b"", status_code=response.status_code, headers=out)
    return Response(body, status_code=response.status_code, headers=out)


def _action(query: Query) -> str:
    """The path of `query`'s page: where a form that asks for it sends its fields."""
    return page_url(query).partition("?")[0]


def _without_blanks(request: Request) -> str:
    """The raw query string without its empty parameters (`lumi=`, as a form sends a field
    left empty): a page treats them as absent."""
    raw = request.scope["query_string"].decode("latin-1")
    return "&".join(f for f in raw.split("&") if f.partition("=")[1:] != ("=", ""))


def _parsed(request: Request, path: str, kind: type[Q]) -> Q:
    """The twin's query of a page, parsed like a read of `path` with the page's parameters."""
    query = parse(path, _without_blanks(request))
    if not isinstance(query, kind):  # the routes admit nothing else
        raise NotFound(f"no page {request.url.path[:200]!r}")
    return query


def _next_history(query: History, document: Mapping[str, Any]) -> str | None:
    following = document["next"]
    return None if following is None else History(query.of, query.name, following).url()


def _attestation(attestation: Any) -> list[tuple[str, str]]:
    """The summary a run record keeps (`outpost prepare`): caches, agreeing, differing,
    not answering; whatever else it holds is in the JSON below it."""
    if not isinstance(attestation, dict):
        return []
    summary = []
    for key in ("caches", "agree", "differ", "failed", "error"):
        value = attestation.get(key)
        if isinstance(value, list):
            summary.append((key, f"{len(value)}: {', '.join(map(str, value[:20]))}"))
        elif value is not None:
            summary.append((key, str(value)))
    return summary
