"""Typed queries → SQLAlchemy Core statements with bound parameters.

Each read has two statements: the *answer* (rows for the body) and the *version* (one row: does
the subject exist, the newest change time of every row the answer depends on, and whether that
can still change). The origin runs the version first; the ETag and Last-Modified come from it,
so a conditional GET is answered 304 without running or serialising the answer.

"Newest insertion wins": an IOV (or a global-tag map entry) re-inserted with the same key later
replaces the earlier one, and a snapshot bound `insertion_time <= :snapshot` sees the database as
it was then. Without a snapshot the bound is INT64_MAX, so a statement's shape depends only on
the kind of query: each shape is built once and cached, and a request only supplies parameters.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    Boolean,
    ColumnElement,
    LargeBinary,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from origin.query.table import TableAccess
from origin.schema import changes, global_tag_map, global_tags, iovs, payloads, runs, tags
from outpost.urls import (
    INT64_MAX,
    TAG_LIST_LIMIT,
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
    TableQuery,
    TagInfo,
    TagIovs,
    TagList,
)

__all__ = [
    "HISTORY_PAGE",
    "Statement",
    "answer_statement",
    "like_pattern",
    "payload_head_statement",
    "run_lumi_key",
    "version_statement",
]

HEAD = INT64_MAX  # the key that resolves a timestamp tag to its newest IOV
Statement = tuple[Select[Any], dict[str, Any]]
HISTORY_PAGE = 1000  # history entries per answer; `next` pages on
HISTORY_KINDS = {"tags": ("tag", "iovs", "lock"), "globaltags": ("globaltag",)}


def run_lumi_key(run: int, lumi: int) -> int:
    """The `since` of a run_lumi IOV: run in the high 32 bits, lumi section in the low 32."""
    return (run << 32) | lumi


def _snapshot(snapshot: int | None) -> int:
    return INT64_MAX if snapshot is None else snapshot


def version_statement(query: Query, access: TableAccess | None = None) -> Statement:
    """One row `(exists, version, locked, …)`, or none if the subject does not exist."""
    match query:
        case GlobalTagList():
            return _global_tags_version(), {}
        case GlobalTagMap(name=name):
            return _global_tag_map_version(), {"gt": name}
        case TagInfo(name=name):
            return _tag_version(), {"tag": name}
        case TagIovs(tag=name, snapshot=snapshot):
            return _tag_iovs_version(), {"tag": name, "snapshot": _snapshot(snapshot)}
        case Resolve(globaltag=name, snapshot=snapshot):
            return _resolve_version(), {"gt": name, "snapshot": _snapshot(snapshot)}
        case Payload(hash=digest):
            return _payload_version(), {"hash": digest}
        case TableQuery():
            assert access is not None, "a table query needs the allow-list"
            return access.version_statement(query), {}
        case History(of=of, name=name):
            return _history_version(of), {"name": name}
        case RunQuery(run=run):
            return _run_version(), {"run": run}
        case RunList(since=since):
            return _run_list_version(), {"since": since}
        case TagList():
            return _tag_list_version(), {}
        case PayloadInfo(hash=digest):
            return _payload_version(), {"hash": digest}
        case GlobalTagDiff():
            return _diff_version(), _diff_params(query)
    raise TypeError(f"not a query: {query!r}")


def answer_statement(query: Query, access: TableAccess | None = None) -> Statement:
    """The statement whose rows make the body of `query`'s answer (payload: its bytes)."""
    match query:
        case GlobalTagList():
            return _global_tags(), {}
        case GlobalTagMap(name=name):
            return _global_tag_map(), {"gt": name, "snapshot": INT64_MAX}
        case TagInfo(name=name):
            return _tag(), {"tag": name}
        case TagIovs():
            params = {"tag": query.tag, "snapshot": _snapshot(query.snapshot), "since": query.since}
            if query.channel is not None:
                params["channel"] = query.channel
            if query.until is not None:
                params["until"] = query.until
            return _tag_iovs(query.channel is not None, query.until is not None), params
        case Resolve():
            return _resolve(), {
                "gt": query.globaltag,
                "snapshot": _snapshot(query.snapshot),
                "run_key": query.run,
                "lumi_key": run_lumi_key(query.run, query.lumi),
                "time_key": HEAD if query.time is None else query.time,
            }
        case Payload(hash=digest):
            return _payload_data(), {"hash": digest}
        case TableQuery():
            assert access is not None, "a table query needs the allow-list"
            return access.answer_statement(query), {}
        case History(of=of, name=name, after=after):
            return _history(of), {"name": name, "after": after, "limit": HISTORY_PAGE + 1}
        case RunQuery(run=run):
            return _run(), {"run": run}
        case RunList(since=since, limit=limit):
            return _run_list(), {"since": since, "limit": limit + 1}  # one more: is there a next
        case TagList(name=name, payload_type=payload_type):
            found: dict[str, Any] = {"limit": TAG_LIST_LIMIT + 1}  # one more: truncated?
            if name is not None:
                found["name_glob"] = name
                found["name_like"] = like_pattern(name)
            if payload_type is not None:
                found["payload_type"] = payload_type
            return _tag_list(name is not None, payload_type is not None), found
        case PayloadInfo(hash=digest):
            return _payload_info(), {"hash": digest}
        case GlobalTagDiff():
            return _diff(), _diff_params(query)
    raise TypeError(f"not a query: {query!r}")


def payload_head_statement(digest: str, count: int) -> Statement:
    """The first `count` bytes of payload `digest` and its size, without reading the rest
    into the process: `substr` on the blob, in SQL. Empty while the size is not: the bytes
    are in the file store (`origin.payloadfiles.in_files`)."""
    return _payload_head(count), {"hash": digest}


@cache
def _payload_head(count: int) -> Select[Any]:
    first: ColumnElement[int] = literal_column("1")
    length: ColumnElement[int] = literal_column(str(int(count)))
    head = func.substr(payloads.c.data, first, length, type_=LargeBinary)
    return select(head.label("head"), payloads.c.size).where(payloads.c.hash == bindparam("hash"))


def like_pattern(glob: str, escape: str = "!") -> str:
    """A name glob (`*`, `?`) as a LIKE pattern with `escape` as its escape character: `%`, `_`
    and `escape` itself match only themselves."""
    out = []
    for char in glob:
        if char in ("%", "_", escape):
            out.append(escape + char)
        else:
            out.append({"*": "%", "?": "_"}.get(char, char))
    return "".join(out)


def _diff_params(query: GlobalTagDiff) -> dict[str, Any]:
    return {
        "a": query.a,
        "b": query.b,
        "a_snapshot": _snapshot(query.a_snapshot),
        "b_snapshot": _snapshot(query.b_snapshot),
    }


class NameGlob(FunctionElement[bool]):
    """`column` matches a name glob, case-sensitive on every backend: `column LIKE
    :name_like ESCAPE '!'` (PostgreSQL's LIKE is case-sensitive), and on SQLite, whose LIKE
    ignores case, `column GLOB :name_glob` (a name glob has no `[`, so it is a GLOB pattern
    as it is). Both parameters are bound; each backend's statement uses one."""

    type = Boolean()
    name = "name_glob"
    inherit_cache = True


@compiles(NameGlob)
def _name_glob_like(element: NameGlob, compiler: SQLCompiler, **kw: Any) -> str:
    column, like, _ = element.clauses
    return compiler.process(column.like(like, escape="!"), **kw)


@compiles(NameGlob, "sqlite")
def _name_glob_sqlite(element: NameGlob, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, glob = element.clauses
    return f"{compiler.process(column, **kw)} GLOB {compiler.process(glob, **kw)}"


# --- version statements --------------------------------------------------------------------


def _greatest(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    """max(a, b) treating NULL as 0, in SQL both SQLite and PostgreSQL accept."""
    a, b = func.coalesce(a, 0), func.coalesce(b, 0)
    return case((a >= b, a), else_=b)


@cache
def _global_tags_version() -> Select[Any]:
    newest = select(func.max(global_tags.c.modified_at)).scalar_subquery()
    return select(
        literal(True).label("exists"), newest.label("version"), literal(False).label("locked")
    )


@cache
def _global_tag_map_version() -> Select[Any]:
    gt = global_tags.c
    newest_map = select(func.max(global_tag_map.c.insertion_time)).where(
        global_tag_map.c.global_tag == bindparam("gt")
    )
    return select(
        literal(True).label("exists"),
        _greatest(gt.modified_at, newest_map.scalar_subquery()).label("version"),
        (gt.state == "locked").label("locked"),
        gt.state,
        gt.description,
        gt.created_at,
        gt.modified_at,
    ).where(gt.name == bindparam("gt"))


@cache
def _tag_version() -> Select[Any]:
    return select(
        literal(True).label("exists"),
        tags.c.modified_at.label("version"),
        (tags.c.state == "locked").label("locked"),
    ).where(tags.c.name == bindparam("tag"))


@cache
def _history_version(of: str) -> Select[Any]:
    """The subject exists; its newest change time; locked once it can no longer change."""
    newest = select(func.max(changes.c.time)).where(
        changes.c.subject == bindparam("name"), changes.c.kind.in_(HISTORY_KINDS[of])
    )
    subject = tags if of == "tags" else global_tags
    return select(
        literal(True).label("exists"),
        newest.scalar_subquery().label("version"),
        (subject.c.state == "locked").label("locked"),
    ).where(subject.c.name == bindparam("name"))


@cache
def _tag_iovs_version() -> Select[Any]:
    newest = select(func.max(iovs.c.insertion_time)).where(
        iovs.c.tag_name == bindparam("tag"), iovs.c.insertion_time <= bindparam("snapshot")
    )
    return select(
        literal(True).label("exists"),
        newest.scalar_subquery().label("version"),
        (tags.c.state == "locked").label("locked"),
    ).where(tags.c.name == bindparam("tag"))


@cache
def _resolve_version() -> Select[Any]:
    gtm = global_tag_map.c
    in_map = (gtm.global_tag == bindparam("gt"), gtm.insertion_time <= bindparam("snapshot"))
    mapped = select(gtm.tag_name).where(*in_map)
    newest_map = select(func.max(gtm.insertion_time)).where(*in_map)
    newest_iov = select(func.max(iovs.c.insertion_time)).where(
        iovs.c.tag_name.in_(mapped), iovs.c.insertion_time <= bindparam("snapshot")
    )
    open_tags = select(func.count()).where(tags.c.name.in_(mapped), tags.c.state == "open")
    return select(
        literal(True).label("exists"),
        _greatest(newest_map.scalar_subquery(), newest_iov.scalar_subquery()).label("version"),
        and_(global_tags.c.state == "locked", open_tags.scalar_subquery() == 0).label("locked"),
    ).where(global_tags.c.name == bindparam("gt"))


@cache
def _run_version() -> Select[Any]:
    """A run record never changes once written: final."""
    return select(
        literal(True).label("exists"),
        runs.c.created_at.label("version"),
        literal(True).label("locked"),
    ).where(runs.c.run == bindparam("run"))


@cache
def _run_list_version() -> Select[Any]:
    """The newest record from `since` on: records are only ever added, each later than every
    one before it (`WriteSession.put_run_record`), so any change to the page moves it."""
    newest = select(func.max(runs.c.created_at)).where(runs.c.run >= bindparam("since"))
    return select(
        literal(True).label("exists"),
        newest.scalar_subquery().label("version"),
        literal(False).label("locked"),
    )


@cache
def _tag_list_version() -> Select[Any]:
    """Every change of a tag (created, IOVs appended, locked) moves its `modified_at`."""
    newest = select(func.max(tags.c.modified_at)).scalar_subquery()
    return select(
        literal(True).label("exists"), newest.label("version"), literal(False).label("locked")
    )


@cache
def _diff_version() -> Select[Any]:
    """One row whether or not both global tags exist (`exists` says, and which one does not);
    the newest map entry either side sees."""
    gtm = global_tag_map.c

    def newest(side: str) -> Any:
        return (
            select(func.max(gtm.insertion_time))
            .where(
                gtm.global_tag == bindparam(side),
                gtm.insertion_time <= bindparam(f"{side}_snapshot"),
            )
            .scalar_subquery()
        )

    a_exists = exists().where(global_tags.c.name == bindparam("a"))
    b_exists = exists().where(global_tags.c.name == bindparam("b"))
    return select(
        and_(a_exists, b_exists).label("exists"),
        a_exists.label("a_exists"),
        _greatest(newest("a"), newest("b")).label("version"),
        literal(False).label("locked"),
    )


@cache
def _payload_version() -> Select[Any]:
    return select(
        literal(True).label("exists"),
        payloads.c.created_at.label("version"),
        literal(True).label("locked"),
        payloads.c.size,
        payloads.c.object_type,
    ).where(payloads.c.hash == bindparam("hash"))


# --- answer statements ---------------------------------------------------------------------


@cache
def _global_tags() -> Select[Any]:
    gt = global_tags.c
    return select(gt.name, gt.state, gt.description, gt.created_at, gt.modified_at).order_by(
        gt.name
    )


@cache
def _global_tag_map() -> Select[Any]:
    current = _current_map()
    return select(current.c.record, current.c.label, current.c.tag_name).order_by(
        current.c.record, current.c.label
    )


@cache
def _tag() -> Select[Any]:
    t = tags.c
    columns = (t.name, t.time_type, t.payload_type, t.description, t.state, t.created_at)
    return select(*columns, t.modified_at).where(t.name == bindparam("tag"))


@cache
def _history(of: str) -> Select[Any]:
    c = changes.c
    return (
        select(c.seq, c.who, c.entry)
        .where(
            c.subject == bindparam("name"),
            c.kind.in_(HISTORY_KINDS[of]),
            c.seq > bindparam("after"),
        )
        .order_by(c.seq)
        .limit(bindparam("limit"))
    )


_RUN_FIELDS = ("run", "globaltag", "lumi", "digest", "snapshot", "attestation", "who", "created_at")


@cache
def _run() -> Select[Any]:
    columns = [runs.c[name] for name in _RUN_FIELDS]
    return select(*columns, runs.c.records).where(runs.c.run == bindparam("run"))


@cache
def _run_list() -> Select[Any]:
    columns = [runs.c[name] for name in _RUN_FIELDS]
    return (
        select(*columns)
        .where(runs.c.run >= bindparam("since"))
        .order_by(runs.c.run)
        .limit(bindparam("limit"))
    )


@cache
def _tag_list(by_name: bool, by_payload_type: bool) -> Select[Any]:
    t = tags.c
    columns = (t.name, t.time_type, t.payload_type, t.state, t.description, t.created_at)
    conditions: list[ColumnElement[bool]] = []
    if by_name:
        conditions.append(NameGlob(t.name, bindparam("name_like"), bindparam("name_glob")))
    if by_payload_type:
        conditions.append(t.payload_type == bindparam("payload_type"))
    return (
        select(*columns, t.modified_at)
        .where(*conditions)
        .order_by(t.name)
        .limit(bindparam("limit"))
    )


@cache
def _payload_info() -> Select[Any]:
    """The payload's row without its bytes, and who uploaded it (its `payload` change)."""
    p, c = payloads.c, changes.c
    uploader = (
        select(c.who)
        .where(c.subject == p.hash, c.kind == "payload")
        .order_by(c.seq)
        .limit(1)
        .scalar_subquery()
    )
    return select(p.hash, p.size, p.object_type, p.created_at, uploader.label("who")).where(
        p.hash == bindparam("hash")
    )


@cache
def _diff() -> Select[Any]:
    """Both maps, each as of its own snapshot, as (side, record, label, tag_name) rows in
    (record, label, side) order; `encode` pairs them up."""
    sides = []
    for side in ("a", "b"):
        current = _current_map(side, f"{side}_snapshot", suffix=f"_{side}")
        sides.append(
            select(
                literal_column(f"'{side}'").label("side"),
                current.c.record,
                current.c.label,
                current.c.tag_name,
            )
        )
    both = union_all(*sides).subquery("sides")
    return select(both.c.side, both.c.record, both.c.label, both.c.tag_name).order_by(
        both.c.record, both.c.label, both.c.side
    )


@cache
def _payload_data() -> Select[Any]:
    return select(payloads.c.data).where(payloads.c.hash == bindparam("hash"))


def _current_map(gt: str = "gt", snapshot: str = "snapshot", suffix: str = "") -> Any:
    """A global tag's map (`:gt`) as of `:snapshot`: newest entry per (record, label), no
    tombstones. A statement with two maps names their parameters and CTEs apart."""
    gtm = global_tag_map.c
    ranked = (
        select(
            gtm.record,
            gtm.label,
            gtm.tag_name,
            func.row_number()
            .over(partition_by=(gtm.record, gtm.label), order_by=gtm.insertion_time.desc())
            .label("rank"),
        )
        .where(gtm.global_tag == bindparam(gt), gtm.insertion_time <= bindparam(snapshot))
        .cte(f"ranked_map{suffix}")
    )
    return (
        select(ranked.c.record, ranked.c.label, ranked.c.tag_name, tags.c.time_type)
        .join_from(ranked, tags, tags.c.name == ranked.c.tag_name)
        .where(ranked.c.rank == 1)
        .cte(f"current_map{suffix}")
    )


@cache
def _tag_iovs(by_channel: bool, bounded: bool) -> Select[Any]:
    conditions = [
        iovs.c.tag_name == bindparam("tag"),
        iovs.c.insertion_time <= bindparam("snapshot"),
    ]
    if by_channel:
        conditions.append(iovs.c.channel == bindparam("channel"))
    ranked = (
        select(
            iovs.c.channel,
            iovs.c.since,
            iovs.c.insertion_time,
            iovs.c.payload_hash,
            func.row_number()
            .over(
                partition_by=(iovs.c.channel, iovs.c.since), order_by=iovs.c.insertion_time.desc()
            )
            .label("rank"),
        )
        .where(*conditions)
        .cte("ranked_iovs")
    )
    current = (
        select(
            ranked.c.channel,
            ranked.c.since,
            func.lead(ranked.c.since)
            .over(partition_by=ranked.c.channel, order_by=ranked.c.since)
            .label("until"),
            ranked.c.payload_hash,
            ranked.c.insertion_time,
        )
        .where(ranked.c.rank == 1)
        .cte("current_iovs")
    )
    overlapping: list[ColumnElement[bool]] = [
        current.c.until.is_(None) | (current.c.until > bindparam("since"))
    ]
    if bounded:
        overlapping.append(current.c.since < bindparam("until"))
    return (
        select(
            current.c.channel,
            current.c.since,
            current.c.until,
            current.c.payload_hash,
            payloads.c.size,
            current.c.insertion_time,
        )
        .join_from(current, payloads, payloads.c.hash == current.c.payload_hash)
        .where(*overlapping)
        .order_by(current.c.channel, current.c.since)
    )


@cache
def _resolve() -> Select[Any]:
    snapshot: BindParameter[int] = bindparam("snapshot")
    current = _current_map()
    key = case(
        (current.c.time_type == "run", bindparam("run_key")),
        (current.c.time_type == "run_lumi", bindparam("lumi_key")),
        else_=bindparam("time_key"),
    )
    candidates = (
        select(
            current.c.record,
            current.c.label,
            iovs.c.tag_name,
            iovs.c.channel,
            iovs.c.since,
            iovs.c.payload_hash,
            func.row_number()
            .over(
                partition_by=(current.c.record, current.c.label, iovs.c.channel),
                order_by=(iovs.c.since.desc(), iovs.c.insertion_time.desc()),
            )
            .label("rank"),
        )
        .join_from(current, iovs, iovs.c.tag_name == current.c.tag_name)
        .where(iovs.c.since <= key, iovs.c.insertion_time <= snapshot)
        .cte("candidates")
    )
    later = iovs.alias("later")
    until = (
        select(func.min(later.c.since))
        .where(
            later.c.tag_name == candidates.c.tag_name,
            later.c.channel == candidates.c.channel,
            later.c.since > candidates.c.since,
            later.c.insertion_time <= snapshot,
        )
        .scalar_subquery()
    )
    chosen = and_(
        candidates.c.record == current.c.record,
        candidates.c.label == current.c.label,
        candidates.c.rank == 1,
    )
    return (
        select(
            current.c.record,
            current.c.label,
            current.c.tag_name,
            current.c.time_type,
            candidates.c.channel,
            candidates.c.since,
            until.label("until"),
            candidates.c.payload_hash,
            payloads.c.size,
        )
        .select_from(
            current.outerjoin(candidates, chosen).outerjoin(
                payloads, payloads.c.hash == candidates.c.payload_hash
            )
        )
        .order_by(current.c.record, current.c.label, candidates.c.channel)
    )
