"""Database engines: one read-only engine for the read API, one for writes; migrations.

SQLite (the embedded default) runs in WAL mode so readers never wait for the writer; writes take
the write lock up front (`BEGIN IMMEDIATE`) so two writers cannot deadlock on an upgrade. On
PostgreSQL the read engine's sessions are `default_transaction_read_only`, and both engines carry
a statement timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from outpost.errors import BadRequest, clip

__all__ = ["Engines", "create_engines", "describe", "migrate", "normalise_url"]

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Engines:
    reader: Engine
    writer: Engine

    def dispose(self) -> None:
        self.reader.dispose()
        self.writer.dispose()


def normalise_url(url: str) -> str:
    """Accept `postgresql://` as `postgresql+psycopg://`; refuse what we cannot serve."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise BadRequest(f"database URL {url!r} is malformed", accepted=_ACCEPTED_URLS) from exc
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


def create_engines(url: str, *, statement_timeout_ms: int = 30_000) -> Engines:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return Engines(_sqlite(url, read_only=True), _sqlite(url, read_only=False))
    timeout = f"-c statement_timeout={statement_timeout_ms}"
    reader = create_engine(
        url,
        pool_size=8,
        pool_pre_ping=True,
        isolation_level="REPEATABLE READ",
        connect_args={"options": f"{timeout} -c default_transaction_read_only=on"},
    )
    writer = create_engine(url, pool_size=4, pool_pre_ping=True, connect_args={"options": timeout})
    return Engines(reader, writer)


def _sqlite(url: str, *, read_only: bool) -> Engine:
    engine = create_engine(url, pool_size=8, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
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
