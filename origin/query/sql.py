"""Typed queries → SQLAlchemy Core statements, all values as bound parameters.

Each read has two statements: the *answer* (rows for the body) and the *version* (one row: does
the subject exist, the newest change time of every row the answer depends on, and what the TTL
class needs). The origin runs the version first; the ETag and Last-Modified come from it, so a
conditional GET is answered 304 without running or serialising the answer.

"Newest insertion wins": an IOV (or a global-tag map entry) re-inserted with the same key later
replaces the earlier one, and a snapshot bound `insertion_time <= :snapshot` sees the database as
it was then. Without a snapshot the bound is INT64_MAX, so the statement shape never changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    func,
    literal,
    select,
)

from origin.schema import global_tag_map, global_tags, iovs, payloads, tags
from outpost.errors import BadRequest, NotFound
from outpost.urls import (
    INT64_MAX,
    Filter,
    GlobalTagList,
    GlobalTagMap,
    Payload,
    Resolve,
    TableQuery,
    TagInfo,
    TagIovs,
)

__all__ = [
    "DEFAULT_TABLES",
    "TableAccess",
    "answer_statement",
    "default_table_access",
    "run_lumi_key",
    "version_statement",
]

HEAD = INT64_MAX  # the key that resolves a timestamp tag to its newest IOV


def run_lumi_key(run: int, lumi: int) -> int:
    """The `since` of a run_lumi IOV: run in the high 32 bits, lumi section in the low 32."""
    return (run << 32) | lumi


def _snapshot(snapshot: int | None) -> int:
    return INT64_MAX if snapshot is None else snapshot


# --- version statements --------------------------------------------------------------------


def _scalar(stmt: Select[Any]) -> ColumnElement[Any]:
    return stmt.scalar_subquery()


def _greatest(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    """max(a, b) treating NULL as 0, in SQL both SQLite and PostgreSQL accept."""
    a, b = func.coalesce(a, 0), func.coalesce(b, 0)
    return case((a >= b, a), else_=b)


def version_statement(query: Any, access: TableAccess | None = None) -> Select[Any]:
    """One row `(exists, version, locked)`: `version` is the newest change time (µs) the answer
    depends on (NULL if nothing yet); `locked` is true when nothing the answer reads can change."""
    match query:
        case GlobalTagList():
            return select(
                literal(True).label("exists"),
                _scalar(select(func.max(global_tags.c.modified_at))).label("version"),
                literal(False).label("locked"),
            )
        case GlobalTagMap(name=name):
            gt = global_tags.c
            newest_map = select(func.max(global_tag_map.c.insertion_time)).where(
                global_tag_map.c.global_tag == bindparam("gt", name)
            )
            return select(
                literal(True).label("exists"),
                _greatest(gt.modified_at, _scalar(newest_map)).label("version"),
                (gt.state == "locked").label("locked"),
                gt.state,
                gt.description,
                gt.created_at,
                gt.modified_at,
            ).where(gt.name == bindparam("gt", name))
        case TagInfo(name=name):
            return select(
                literal(True).label("exists"),
                tags.c.modified_at.label("version"),
                (tags.c.state == "locked").label("locked"),
            ).where(tags.c.name == bindparam("tag", name))
        case TagIovs(tag=name, snapshot=snapshot):
            newest = select(func.max(iovs.c.insertion_time)).where(
                iovs.c.tag_name == bindparam("tag", name),
                iovs.c.insertion_time <= bindparam("snapshot", _snapshot(snapshot)),
            )
            return select(
                literal(True).label("exists"),
                _scalar(newest).label("version"),
                (tags.c.state == "locked").label("locked"),
            ).where(tags.c.name == bindparam("tag", name))
        case Resolve(globaltag=name, snapshot=snapshot):
            return _resolve_version(name, _snapshot(snapshot))
        case Payload(hash=digest):
            return select(
                literal(True).label("exists"),
                payloads.c.created_at.label("version"),
                literal(True).label("locked"),
                payloads.c.size,
                payloads.c.object_type,
            ).where(payloads.c.hash == bindparam("hash", digest))
        case TableQuery():
            assert access is not None, "a table query needs the allow-list"
            return access.version_statement(query)
    raise TypeError(f"not a query: {query!r}")


def _resolve_version(name: str, snapshot: int) -> Select[Any]:
    gtm = global_tag_map.c
    gt_param: BindParameter[str] = bindparam("gt", name)
    snap: BindParameter[int] = bindparam("snapshot", snapshot)
    mapped = select(gtm.tag_name).where(gtm.global_tag == gt_param, gtm.insertion_time <= snap)
    newest_map = select(func.max(gtm.insertion_time)).where(
        gtm.global_tag == gt_param, gtm.insertion_time <= snap
    )
    newest_iov = select(func.max(iovs.c.insertion_time)).where(
        iovs.c.tag_name.in_(mapped), iovs.c.insertion_time <= snap
    )
    open_tags = select(func.count()).where(tags.c.name.in_(mapped), tags.c.state == "open")
    return select(
        literal(True).label("exists"),
        _greatest(_scalar(newest_map), _scalar(newest_iov)).label("version"),
        and_(global_tags.c.state == "locked", _scalar(open_tags) == 0).label("locked"),
    ).where(global_tags.c.name == gt_param)


# --- answer statements ---------------------------------------------------------------------


def answer_statement(query: Any, access: TableAccess | None = None) -> Select[Any]:
    """The statement whose rows make the body of `query`'s answer (payload: its bytes)."""
    match query:
        case GlobalTagList():
            gt = global_tags.c
            return select(
                gt.name, gt.state, gt.description, gt.created_at, gt.modified_at
            ).order_by(gt.name)
        case GlobalTagMap(name=name):
            current = _current_map(name, INT64_MAX)
            return select(current.c.record, current.c.label, current.c.tag_name).order_by(
                current.c.record, current.c.label
            )
        case TagInfo(name=name):
            t = tags.c
            return select(
                t.name,
                t.time_type,
                t.payload_type,
                t.description,
                t.state,
                t.created_at,
                t.modified_at,
            ).where(t.name == bindparam("tag", name))
        case TagIovs():
            return _tag_iovs(query)
        case Resolve():
            return _resolve(query)
        case Payload(hash=digest):
            return select(payloads.c.data).where(payloads.c.hash == bindparam("hash", digest))
        case TableQuery():
            assert access is not None, "a table query needs the allow-list"
            return access.answer_statement(query)
    raise TypeError(f"not a query: {query!r}")


def _current_map(name: str, snapshot: int) -> Any:
    """The map of a global tag as of `snapshot`: newest entry per (record, label), no tombstones."""
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
        .where(
            gtm.global_tag == bindparam("gt", name),
            gtm.insertion_time <= bindparam("snapshot", snapshot),
        )
        .cte("ranked_map")
    )
    return (
        select(ranked.c.record, ranked.c.label, ranked.c.tag_name, tags.c.time_type)
        .join_from(ranked, tags, tags.c.name == ranked.c.tag_name)
        .where(ranked.c.rank == 1)
        .cte("current_map")
    )


def _tag_iovs(query: TagIovs) -> Select[Any]:
    snap: BindParameter[int] = bindparam("snapshot", _snapshot(query.snapshot))
    conditions = [iovs.c.tag_name == bindparam("tag", query.tag), iovs.c.insertion_time <= snap]
    if query.channel is not None:
        conditions.append(iovs.c.channel == bindparam("channel", query.channel))
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
        current.c.until.is_(None) | (current.c.until > bindparam("since", query.since))
    ]
    if query.until is not None:
        overlapping.append(current.c.since < bindparam("until", query.until))
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


def _resolve(query: Resolve) -> Select[Any]:
    snap: BindParameter[int] = bindparam("snapshot", _snapshot(query.snapshot))
    current = _current_map(query.globaltag, _snapshot(query.snapshot))
    key = case(
        (current.c.time_type == "run", bindparam("run_key", query.run)),
        (
            current.c.time_type == "run_lumi",
            bindparam("lumi_key", run_lumi_key(query.run, query.lumi)),
        ),
        else_=bindparam("time_key", HEAD if query.time is None else query.time),
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
        .where(iovs.c.since <= key, iovs.c.insertion_time <= snap)
        .cte("candidates")
    )
    later = iovs.alias("later")
    until = (
        select(func.min(later.c.since))
        .where(
            later.c.tag_name == candidates.c.tag_name,
            later.c.channel == candidates.c.channel,
            later.c.since > candidates.c.since,
            later.c.insertion_time <= snap,
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


# --- the generic table translator ----------------------------------------------------------

_COMPARISONS = {
    "eq": lambda c, v: c == v,
    "ne": lambda c, v: c != v,
    "lt": lambda c, v: c < v,
    "le": lambda c, v: c <= v,
    "gt": lambda c, v: c > v,
    "ge": lambda c, v: c >= v,
}


@dataclass(frozen=True)
class TableAccess:
    """The allow-list of the generic translator: which tables, which columns, row cap.

    `versions` names, per table, the column whose maximum changes whenever a row is written
    (tables without one get a content ETag instead). Identifiers from a URL are only ever used
    as keys into this allow-list, never as SQL text.
    """

    tables: Mapping[str, Table]
    hidden: Mapping[str, frozenset[str]] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    max_rows: int = 10_000

    def columns(self, name: str) -> list[str]:
        table = self._table(name)
        hidden = self.hidden.get(name, frozenset())
        return [c.name for c in table.columns if c.name not in hidden]

    def selected(self, query: TableQuery) -> list[str]:
        """The columns a table query answers with, in order."""
        return list(query.select) or self.columns(query.table)

    def _table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            raise NotFound(
                f"table {name!r} is not readable", accepted=sorted(self.tables)
            ) from None

    def _column(self, table: str, name: str) -> Any:
        allowed = self.columns(table)
        if name not in allowed:
            raise BadRequest(f"unknown column {name!r} of {table!r}", accepted=allowed)
        return self._table(table).c[name]

    def answer_statement(self, query: TableQuery) -> Select[Any]:
        if query.limit is not None and query.limit > self.max_rows:
            raise BadRequest(f"limit={query.limit} is over the cap", accepted=f"1..{self.max_rows}")
        stmt = select(*(self._column(query.table, n) for n in self.selected(query)))
        for index, item in enumerate(query.filters):
            stmt = stmt.where(self._condition(query.table, item, index))
        order = [self._column(query.table, o.column) for o in query.order]
        stmt = stmt.order_by(
            *(
                c.desc() if o.descending else c.asc()
                for c, o in zip(order, query.order, strict=True)
            )
        )
        # One more row than allowed tells the caller the answer was cut.
        return stmt.limit(bindparam("limit", min(query.limit or self.max_rows, self.max_rows) + 1))

    def version_statement(self, query: TableQuery) -> Select[Any]:
        table = self._table(query.table)
        column = self.versions.get(query.table)
        if column is None:  # no change column: the origin falls back to a content ETag
            newest: Any = literal(None, BigInteger)
        else:
            newest = select(func.max(table.c[column])).scalar_subquery()
        return select(
            literal(True).label("exists"),
            newest.label("version"),
            literal(False).label("locked"),
        )

    def _condition(self, table: str, item: Filter, index: int) -> ColumnElement[bool]:
        column = self._column(table, item.column)
        if item.op == "is":
            return column.is_(None)  # type: ignore[no-any-return]
        if isinstance(item.value, tuple):
            values = [_coerce(column, v, item.column) for v in item.value]
            return column.in_(bindparam(f"in_{index}", values, expanding=True))  # type: ignore[no-any-return]
        value: BindParameter[Any] = bindparam(
            f"value_{index}", _coerce(column, item.value, item.column)
        )
        return _COMPARISONS[item.op](column, value)  # type: ignore[no-any-return]


def _coerce(column: Any, text: str, name: str) -> int | str:
    if isinstance(column.type, BigInteger | Integer):
        try:
            value = int(text, 10)
        except ValueError:
            raise BadRequest(f"{name}: {text[:100]!r} is not an integer") from None
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise BadRequest(f"{name}: {value} is out of range", accepted="a signed 64-bit integer")
        return value
    if isinstance(column.type, String | Text):
        return text
    raise BadRequest(f"column {name!r} cannot be filtered", accepted="integer or text columns")


DEFAULT_TABLES = ("global_tag_map", "global_tags", "iovs", "payloads", "tags")
_VERSIONS = {
    "global_tag_map": "insertion_time",
    "global_tags": "modified_at",
    "iovs": "insertion_time",
    "payloads": "created_at",
    "tags": "modified_at",
}


def default_table_access(
    names: tuple[str, ...] = DEFAULT_TABLES,
    extra: Mapping[str, Table] | None = None,
    max_rows: int = 10_000,
) -> TableAccess:
    """The allow-list: the conditions tables (payload bytes hidden), plus reflected `extra`."""
    known = {t.name: t for t in (global_tag_map, global_tags, iovs, payloads, tags)}
    known.update(extra or {})
    missing = [n for n in names if n not in known]
    if missing:
        raise NotFound(f"tables {missing} are not in the database", accepted=sorted(known))
    return TableAccess(
        tables={n: known[n] for n in names},
        hidden={"payloads": frozenset({"data"})},
        versions={n: _VERSIONS[n] for n in names if n in _VERSIONS},
        max_rows=max_rows,
    )
