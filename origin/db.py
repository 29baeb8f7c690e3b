"""Database engines: read-only ones for the read API and for Frontier SQL, one for writes.

SQLite (the embedded default) runs in WAL mode so readers never wait for the writer; writes take
the write lock up front (`BEGIN IMMEDIATE`) so two writers cannot deadlock on an upgrade. On
PostgreSQL the read engines' sessions are `default_transaction_read_only`, and every engine
carries a statement timeout.

Frontier SQL is anyone's SQL, so it gets its own engine (a bulkhead: its pool is not the read
API's) under the database's own resource limits (`FrontierLimits`): on SQLite a longest value
(`SQLITE_LIMIT_LENGTH`), temporary tables and sorts in memory (`temp_store=MEMORY`, so no temp
files), and a hard heap limit; on PostgreSQL `work_mem` and `temp_file_limit`.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from outpost.errors import BadRequest, clip
from outpost.redact import redact_url

__all__ = ["Engines", "FrontierLimits", "create_engines", "describe", "migrate", "normalise_url"]

log = logging.getLogger("outpost.origin.db")

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class FrontierLimits:
    """What one Frontier connection may take from the database (see the module docstring)."""

    pool_size: int = 2
    heap_bytes: int = 128 * 1024 * 1024  # SQLite: hard heap limit of the whole process
    value_bytes: int = 64 * 1024 * 1024  # SQLite: longest string or blob (SQLITE_LIMIT_LENGTH)
    work_mem_bytes: int = 4 * 1024 * 1024  # PostgreSQL: work_mem of a sort or hash
    temp_bytes: int = 128 * 1024 * 1024  # PostgreSQL: temp files of the whole pool together

    @property
    def session_temp_kib(self) -> int:
        """PostgreSQL's `temp_file_limit` is per session: the pool's share of each, in kB."""
        return max(1, self.temp_bytes // self.pool_size // 1024)


@dataclass(frozen=True)
class Engines:
    reader: Engine
    writer: Engine
    frontier: Engine

    def dispose(self) -> None:
        self.reader.dispose()
        self.writer.dispose()
        self.frontier.dispose()


def normalise_url(url: str) -> str:
    """Accept `postgresql://` as `postgresql+psycopg://`; refuse what we cannot serve."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        shown = redact_url(url)  # never a password in an error
        raise BadRequest(f"database URL {shown!r} is malformed", accepted=_ACCEPTED_URLS) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "postgresql+psycopg"):
        raise BadRequest(
            f"database {parsed.drivername!r} is not supported", accepted=_ACCEPTED_URLS
        )
    if parsed.drivername == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise BadRequest("an in-memory SQLite database cannot be shared", accepted=_ACCEPTED_URLS)
    return parsed.render_as_string(hide_password=False)


_ACCEPTED_URLS = ["sqlite:///path/to/file.sqlite", "postgresql+psycopg://user@host:port/db"]


def create_engines(
    url: str, *, statement_timeout_ms: int = 30_000, frontier: FrontierLimits | None = None
) -> Engines:
    url = normalise_url(url)
    limits = frontier or FrontierLimits()
    if url.startswith("sqlite"):
        return Engines(
            _sqlite(url, read_only=True),
            _sqlite(url, read_only=False),
            _sqlite(url, read_only=True, pool_size=limits.pool_size, limits=limits),
        )
    timeout = f"-c statement_timeout={statement_timeout_ms}"
    reader = _pg_reader(url, f"{timeout} -c default_transaction_read_only=on", pool_size=8)
    writer = create_engine(url, pool_size=4, pool_pre_ping=True, connect_args={"options": timeout})
    frontier_engine = _pg_reader(
        url,
        f"{timeout} -c default_transaction_read_only=on"
        f" -c work_mem={max(64, limits.work_mem_bytes // 1024)}kB",
        pool_size=limits.pool_size,
        max_overflow=0,
    )
    _limit_pg_temp_files(frontier_engine, limits.session_temp_kib)
    return Engines(reader, writer, frontier_engine)


def _pg_reader(url: str, options: str, *, pool_size: int, max_overflow: int = 10) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        isolation_level="REPEATABLE READ",
        connect_args={"options": options},
    )


def _limit_pg_temp_files(engine: Engine, temp_kib: int) -> None:
    """`temp_file_limit` on each session; it needs a superuser, else the role's own setting holds.

    (A DBA sets it for the origin's role with `ALTER ROLE … SET temp_file_limit`.)
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        import psycopg

        try:
            dbapi_connection.execute(f"SET temp_file_limit = '{temp_kib}kB'")
            dbapi_connection.commit()
        except psycopg.errors.InsufficientPrivilege:
            dbapi_connection.rollback()
            log.warning("cannot set temp_file_limit for Frontier sessions (not a superuser)")


def _sqlite(
    url: str, *, read_only: bool, pool_size: int = 8, limits: FrontierLimits | None = None
) -> Engine:
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=10 if limits is None else 0,  # Frontier: no more than its bulkhead's size
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        if limits is not None:
            dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.value_bytes)
            cursor.execute("PRAGMA temp_store=MEMORY")  # sorts and temp tables: no temp files
            cursor.execute(f"PRAGMA hard_heap_limit={int(limits.heap_bytes)}")  # process-wide
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def migrate(url: str, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision` (what `outpost db init` does)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    command.upgrade(config, revision)


def describe(exc: SQLAlchemyError) -> str:
    """The first line of what the driver said ("file is not a database"): enough for an
    operator, without the statement, parameters or traceback SQLAlchemy adds."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(cause).strip().splitlines()
    return clip(lines[0] if lines else type(cause).__name__)
