"""The generic read translator behind `/v1/query/{table}`: PostgREST-style filters over an
allow-list of tables and views. Identifiers from a URL are only keys into the allow-list; values
are bound parameters coerced to the column's type.
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
    bindparam,
    func,
    literal,
    select,
)

from origin.schema import global_tag_map, global_tags, iovs, payloads, tags
from outpost.errors import BadRequest, NotFound, echo
from outpost.urls import DECIMAL, INT64_MAX, Filter, TableQuery

__all__ = ["DEFAULT_TABLES", "TableAccess", "default_table_access"]

_INT64_DIGITS = len(str(-INT64_MAX - 1))
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
        # The one spelling only: int() also takes full-width digits, "1_000" and " 1".
        if not DECIMAL.fullmatch(text) or len(text) > _INT64_DIGITS:
            raise BadRequest(
                f"{name}: {echo(text)} is not an integer in its one spelling",
                accepted="ASCII digits, an optional leading '-', no leading zeros",
            )
        value = int(text)
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
