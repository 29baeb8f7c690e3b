"""The database layer: migrations match the schema, readers cannot write, SQLite runs in WAL."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError

from origin.db import MIGRATIONS, create_engines, migrate, normalise_url
from origin.schema import changes, metadata, runs, tags
from outpost.errors import BadRequest

TAG_ROW = {
    "name": "T",
    "time_type": "run",
    "payload_type": "X",
    "description": "",
    "state": "open",
    "created_at": 0,
    "modified_at": 0,
}


def test_migrations_produce_exactly_the_schema(empty_db: str) -> None:
    engine = create_engine(normalise_url(empty_db))
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_migrating_twice_changes_nothing(empty_db: str) -> None:
    migrate(empty_db)
    engines = create_engines(empty_db)
    try:
        with engines.reader.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == ScriptDirectory(str(MIGRATIONS)).get_current_head()
    finally:
        engines.dispose()


def test_the_read_engine_refuses_to_write(empty_db: str) -> None:
    engines = create_engines(empty_db)
    try:
        with pytest.raises(DBAPIError), engines.reader.begin() as conn:
            conn.execute(insert(tags).values(**TAG_ROW))
        with engines.writer.begin() as conn:
            conn.execute(insert(tags).values(**TAG_ROW))
    finally:
        engines.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/wal.sqlite"
    migrate(url)
    engines = create_engines(url)
    try:
        with engines.reader.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engines.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "mysql://x@y/z", "not a url"])
def test_unsupported_database_urls_are_refused_by_name(url: str) -> None:
    with pytest.raises(BadRequest) as raised:
        normalise_url(url)
    assert raised.value.accepted


def test_postgresql_scheme_gets_the_psycopg_driver() -> None:
    assert normalise_url("postgresql://u@h:5/d").startswith("postgresql+psycopg://")


def test_a_database_of_the_first_schema_is_upgraded_with_an_empty_feed(tmp_path: object) -> None:
    """A database made before the change feed keeps its data; its feed starts at 0."""
    url = f"sqlite:///{tmp_path}/old.sqlite"
    migrate(url, "0001")
    engines = create_engines(url)
    try:
        with engines.writer.begin() as conn:
            conn.execute(insert(tags).values(**TAG_ROW))
    finally:
        engines.dispose()
    migrate(url)
    engines = create_engines(url)
    try:
        with engines.reader.connect() as conn:
            assert conn.execute(text("SELECT name FROM tags")).scalars().all() == ["T"]
            assert conn.execute(text("SELECT seq FROM feed_head")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM changes")).scalar() == 0
    finally:
        engines.dispose()


def change_row(seq: int, kind: str) -> dict[str, object]:
    return {"seq": seq, "time": seq, "kind": kind, "subject": "500", "entry": "{}", "who": "w"}


RUN_ROW = {
    "run": 500,
    "globaltag": "GT",
    "lumi": 1,
    "digest": "0" * 64,
    "snapshot": 1,
    "records": "[]",
    "attestation": "{}",
    "who": "run-control",
    "created_at": 2,
}


def test_a_database_of_revision_0003_gets_run_records_and_keeps_its_data(empty_db: str) -> None:
    """0004 adds the `runs` table and the feed's `run` kind; downgrading takes both away."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(empty_db).replace("%", "%%"))
    command.downgrade(config, "0003")
    engines = create_engines(empty_db)
    try:
        assert not inspect(engines.writer).has_table("runs")
        with engines.writer.begin() as conn:
            conn.execute(insert(tags).values(**TAG_ROW))
            conn.execute(insert(changes).values(**change_row(1, "tag")))
        with pytest.raises(DBAPIError), engines.writer.begin() as conn:
            conn.execute(insert(changes).values(**change_row(2, "run")))
    finally:
        engines.dispose()

    migrate(empty_db)
    engines = create_engines(empty_db)
    try:
        with engines.writer.begin() as conn:
            conn.execute(insert(changes).values(**change_row(2, "run")))
            conn.execute(insert(runs).values(**RUN_ROW))
        with engines.reader.connect() as conn:
            assert conn.execute(select(tags.c.name)).scalars().all() == ["T"]
            kinds = conn.execute(select(changes.c.kind).order_by(changes.c.seq)).scalars().all()
            assert kinds == ["tag", "run"]
            assert conn.execute(select(runs)).mappings().one() == RUN_ROW
    finally:
        engines.dispose()

    command.downgrade(config, "0003")  # and back: the run entries go with their records
    engines = create_engines(empty_db)
    try:
        assert not inspect(engines.writer).has_table("runs")
        with engines.reader.connect() as conn:
            assert conn.execute(select(changes.c.kind)).scalars().all() == ["tag"]
    finally:
        engines.dispose()
    migrate(empty_db)
