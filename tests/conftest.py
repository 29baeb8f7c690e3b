"""Shared fixtures: sample databases on SQLite and on a real PostgreSQL, and origin clients.

`sample_db` and `empty_db` are parametrised over both backends, so every test that uses them
runs twice; the PostgreSQL half carries the `postgres` marker (`-m "not postgres"` skips it).
Each test gets its own copy: a file copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.asgi import AppClient
from support.origin import TOKENS, MakeClient
from support.servers import PostgresServer, postgres_server
from support.stack import Stack

from origin.app import create_app
from origin.db import Engines, create_engines, migrate
from origin.sample import build_sample
from origin.settings import OriginSettings

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
_counter = itertools.count()


def _fill(url: str, sample: bool) -> None:
    migrate(url)
    engines = create_engines(url)
    try:
        if sample:
            build_sample(engines.writer)
    finally:
        engines.dispose()
    if url.startswith("sqlite:///"):  # fold the WAL into the file, so a file copy is complete
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    root = tmp_path_factory.mktemp("templates")
    paths = {True: root / "sample.sqlite", False: root / "empty.sqlite"}
    for sample, path in paths.items():
        _fill(f"sqlite:///{path}", sample)
    return paths


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_templates(pg: PostgresServer) -> dict[bool, str]:
    names = {True: "sample_template", False: "empty_template"}
    for sample, name in names.items():
        pg.execute(f"CREATE DATABASE {name}")
        _fill(pg.url(name), sample)
    return names


def _database(request: pytest.FixtureRequest, tmp_path: Path, sample: bool) -> str:
    if request.param == "sqlite":
        templates = request.getfixturevalue("sqlite_templates")
        path = tmp_path / "conditions.sqlite"
        shutil.copyfile(templates[sample], path)
        return f"sqlite:///{path}"
    server: PostgresServer = request.getfixturevalue("pg")
    template = request.getfixturevalue("pg_templates")[sample]
    name = f"test_{next(_counter)}"
    server.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return server.url(name)


@pytest.fixture(params=BACKENDS)
def sample_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a private copy of the sample conditions database."""
    return _database(request, tmp_path, sample=True)


@pytest.fixture(params=BACKENDS)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a private, migrated, empty conditions database."""
    return _database(request, tmp_path, sample=False)


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens.toml"
    path.write_text(TOKENS)
    return path


@pytest.fixture
def make_client(tokens_file: Path) -> Iterator[MakeClient]:
    """Start an origin app (lifespan included) over `db`; stopped at the end of the test."""
    clients: list[AppClient] = []

    def make(
        db: str,
        *,
        clock: Callable[[], int] | None = None,
        engines: Engines | None = None,
        **settings: Any,
    ) -> AppClient:
        config = replace(OriginSettings(db=db, tokens_file=tokens_file), **settings)
        client = AppClient(create_app(config, clock=clock, engines=engines))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(sample_db: str, make_client: MakeClient) -> AppClient:
    """An origin over a private copy of the sample database."""
    return make_client(sample_db)


@pytest.fixture
def sample_sqlite(tmp_path: Path, sqlite_templates: dict[bool, Path]) -> str:
    """URL of a private SQLite copy of the sample (for tests of the tiers above the database)."""
    path = tmp_path / "conditions.sqlite"
    shutil.copyfile(sqlite_templates[True], path)
    return f"sqlite:///{path}"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Real processes on loopback (origin, proxies), all stopped at the end of the test."""
    stack = Stack(tmp_path)
    try:
        yield stack
    finally:
        stack.close()
