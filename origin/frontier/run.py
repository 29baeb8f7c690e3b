"""The database side of a Frontier request: version, then each payload, in one read transaction.

Runs on the origin's Frontier engine (its own pool, read-only; SQLite: `query_only`, WAL snapshot,
the limits of `origin.db.FrontierLimits`; PostgreSQL: read-only REPEATABLE READ), so the version
and every payload see one snapshot. The whole request has one deadline (`limits.Deadline`): on
PostgreSQL each statement's `statement_timeout` is what is left of it; SQLite has no statement
timeout of its own, so a progress handler interrupts a statement that runs past it. Each payload
asks the database for at most the row cap plus one row, fetched in batches (a server-side cursor
on PostgreSQL) under the byte cap. Payloads run in order and stop at the first error, as the
servlet does; a database that cannot be reached, or memory the database refuses, is that
payload's error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    CursorResult,
    Engine,
    Float,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    func,
    select,
)
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from origin.frontier.guard import DIALECTS, Prepared
from origin.frontier.limits import Deadline, capped_sql
from origin.frontier.rows import AnswerTooLarge, RowStream, type_name_for_oid
from origin.query.table import TableAccess

__all__ = ["OUT_OF_MEMORY", "Execution", "FrontierDatabase", "Outcome", "Plan", "schema_of"]

OUT_OF_MEMORY = "the query needs more memory than this server gives one query"
FETCH_ROWS = 256  # rows per fetch: what the origin holds of a result beyond the row stream


@dataclass(frozen=True)
class Plan:
    """One payload to answer: its checked statement, or why it is refused."""

    prepared: Prepared | None = None
    error: str | None = None
    empty_is_error: bool = False  # ttl=forever: an empty answer is an error (as the servlet)


@dataclass(frozen=True)
class Outcome:
    """One payload's answer: the row stream and its record count, or an error."""

    stream: bytes | None = None
    records: int = 0
    error: str | None = None


@dataclass
class Execution:
    version: int | None = None  # newest write time (µs) of the tables read; None: no validator
    not_modified: bool = False  # the client's copy is current: nothing was run
    outcomes: list[Outcome] = field(default_factory=list)


def schema_of(access: TableAccess) -> dict[str, dict[str, str]]:
    """The allow-list as the guard reads it: table → column → SQL type (all columns)."""
    return {
        name: {column.name: _sql_type(column.type) for column in table.columns}
        for name, table in access.tables.items()
    }


def _sql_type(kind: Any) -> str:
    for classes, name in (
        ((Boolean,), "BOOLEAN"),
        ((SmallInteger,), "SMALLINT"),
        ((BigInteger,), "BIGINT"),
        ((Integer,), "INT"),
        ((Float,), "DOUBLE"),
        ((Numeric,), "DECIMAL"),
        ((String, Text), "VARCHAR"),
        ((LargeBinary,), "BLOB"),
    ):
        if isinstance(kind, classes):
            return name
    return "UNKNOWN"


class FrontierDatabase:
    def __init__(
        self,
        engine: Engine,
        access: TableAccess,
        *,
        max_bytes: int,
        statement_timeout_ms: int,
    ) -> None:
        self._engine = engine
        self.access = access
        self.dialect = DIALECTS[engine.dialect.name]
        self.schema = schema_of(access)
        self.max_bytes = max_bytes
        self.timeout = statement_timeout_ms / 1000

    def execute(
        self,
        plans: Sequence[Plan],
        fresh_enough: Callable[[int | None], bool],
        deadline: Deadline | None = None,
    ) -> Execution:
        """Answer `plans` in order by `deadline`; `fresh_enough(version)` True means answer 304."""
        deadline = deadline or Deadline.after(self.timeout, time.monotonic())
        execution = Execution()
        if plans and plans[0].prepared is None:  # refused up front: the database is not touched
            execution.outcomes.append(Outcome(error=plans[0].error or "refused"))
            return execution
        try:
            with self._engine.connect() as conn, conn.begin(), self._timer(conn, deadline):
                if all(plan.prepared is not None for plan in plans):
                    self._time_left(conn, deadline)
                    execution.version = self._version(conn, plans)
                    if fresh_enough(execution.version):
                        execution.not_modified = True
                        return execution
                for plan in plans:
                    if deadline.passed(time.monotonic()):
                        execution.outcomes.append(Outcome(error=deadline.message()))
                        break
                    self._time_left(conn, deadline)
                    outcome = self._payload(conn, plan, deadline)
                    execution.outcomes.append(outcome)
                    if outcome.error is not None:
                        break
        except SQLAlchemyError as exc:
            if not execution.outcomes or execution.outcomes[-1].error is None:
                execution.outcomes.append(Outcome(error=f"database error: {_message(exc)}"))
        except MemoryError:  # SQLite's heap limit, outside a payload (the version query)
            execution.outcomes.append(Outcome(error=OUT_OF_MEMORY))
        return execution

    def _time_left(self, conn: Connection, deadline: Deadline) -> None:
        """PostgreSQL: the next statement may run for what is left of the request's deadline."""
        if self.dialect == "postgres":
            remaining = deadline.remaining_ms(time.monotonic())
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {remaining}")

    def _version(self, conn: Connection, plans: Sequence[Plan]) -> int | None:
        tables: set[str] = set()
        for plan in plans:
            assert plan.prepared is not None
            tables |= plan.prepared.tables
        if not tables or any(name not in self.access.versions for name in tables):
            return None  # nothing read, or a table without a change column: no validator
        newest = [
            select(func.max(self.access.tables[name].c[self.access.versions[name]]))
            .scalar_subquery()
            .label(name)
            for name in sorted(tables)
        ]
        row = conn.execute(select(*newest)).one()
        stamps = [int(v) for v in row if v is not None]
        return max(stamps) if stamps else None

    def _payload(self, conn: Connection, plan: Plan, deadline: Deadline) -> Outcome:
        if plan.prepared is None:
            return Outcome(error=plan.error or "refused")
        try:
            result = conn.exec_driver_sql(
                capped_sql(plan.prepared.sql, self.access.max_rows),
                plan.prepared.params,
                execution_options={"stream_results": True, "max_row_buffer": FETCH_ROWS},
            )
            with result:  # closes the (server-side) cursor on a cap too
                stream = self._stream(result, plan.prepared)
        except AnswerTooLarge as exc:
            return Outcome(error=str(exc))
        except MemoryError:  # SQLite's hard heap limit (sqlite3 raises MemoryError for NOMEM)
            return Outcome(error=OUT_OF_MEMORY)
        except DBAPIError as exc:
            if self.dialect == "sqlite" and "interrupted" in str(exc.orig):
                return Outcome(error=deadline.message())
            return Outcome(error=_message(exc))
        if plan.empty_is_error and stream.records == 0:
            return Outcome(stream.getvalue(), 0, "Empty result from query not allowed")
        return Outcome(stream.getvalue(), stream.records)

    def _stream(self, result: CursorResult[Any], prepared: Prepared) -> RowStream:
        """The rows of `result`, fetched in batches into a row stream under the caps."""
        description = result.cursor.description or ()
        names = [str(d[0]) for d in description]
        if self.dialect == "postgres":
            hints: Sequence[str | None] = [type_name_for_oid(d[1]) for d in description]
        else:
            hints = prepared.types
        stream = RowStream(names, hints, max_rows=self.access.max_rows, max_bytes=self.max_bytes)
        while chunk := result.fetchmany(FETCH_ROWS):
            for row in chunk:
                stream.add(tuple(row))
        return stream

    def _timer(self, conn: Connection, deadline: Deadline) -> _SqliteTimeout:
        return _SqliteTimeout(conn, deadline if self.dialect == "sqlite" else None)


class _SqliteTimeout:
    """Interrupts SQLite statements running past the request's deadline (PostgreSQL has its own)."""

    def __init__(self, conn: Connection, deadline: Deadline | None) -> None:
        self._raw: Any = conn.connection.driver_connection if deadline is not None else None
        self._at = deadline.at if deadline is not None else 0.0

    def __enter__(self) -> _SqliteTimeout:
        if self._raw is not None:
            self._raw.set_progress_handler(self._check, 10_000)
        return self

    def _check(self) -> int:
        return 1 if time.monotonic() > self._at else 0

    def __exit__(self, *exc_info: object) -> None:
        if self._raw is not None:
            self._raw.set_progress_handler(None, 0)


def _message(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__
