"""Fixtures of the Frontier tests: origins on a hand-moved clock, and direct reads of the database.

(This directory is not `tests/origin/frontier`: with `pythonpath = tests`, a test directory of
that name is a namespace package `origin.frontier` that shadows the real one for every test.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from support.asgi import AppClient
from support.fnkit import Fetch
from support.origin import FakeClock, MakeClient

NOW = 1_800_000_000_000_000  # 2027-01-15: the sample's writes are long settled
TABLES = ("global_tag_map", "global_tags", "iovs", "payloads", "tags")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def fn(sample_db: str, make_client: MakeClient, clock: FakeClock) -> AppClient:
    """An origin over a private copy of the sample database (SQLite and PostgreSQL)."""
    return make_client(sample_db, clock=clock)


@pytest.fixture
def fn_sqlite(sample_sqlite: str, make_client: MakeClient, clock: FakeClock) -> AppClient:
    """The same on SQLite only, for what does not depend on the database."""
    return make_client(sample_sqlite, clock=clock)


@pytest.fixture
def direct(sample_db: str) -> Iterator[Engine]:
    """The sample database itself, to compare answers with."""
    engine = create_engine(sample_db)
    yield engine
    engine.dispose()


@pytest.fixture
def fetch(direct: Engine) -> Fetch:
    """Rows straight from the database: `fetch(sql, **params)`."""

    def run(sql: str, **params: Any) -> list[Sequence[Any]]:
        with direct.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    return run


@pytest.fixture
def counts(direct: Engine) -> Callable[[], dict[str, int]]:
    """Row counts of every conditions table, to show that a refused request changed nothing."""

    def count() -> dict[str, int]:
        with direct.connect() as conn:
            return {
                t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())  # noqa: S608
                for t in TABLES
            }

    return count
