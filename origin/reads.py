"""The read adapter: runs a query's version and answer statements in one read transaction.

The version row comes first; if the caller's `fresh_enough(head)` says the client's copy is
current, the answer is never run (a 304 costs one small query). Both statements run in one
transaction (WAL snapshot on SQLite, REPEATABLE READ on PostgreSQL), so the ETag always labels
the bytes it was computed for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, literal, select
from sqlalchemy.exc import SQLAlchemyError

from origin.db import describe
from origin.payloadfiles import PayloadFileError, PayloadFiles, in_files
from origin.query.sql import answer_statement, version_statement
from origin.query.table import TableAccess
from origin.schema import changes, feed_head, global_tag_map, global_tags, iovs, payloads, tags
from outpost.errors import NotFound
from outpost.urls import (
    GlobalTagMap,
    History,
    Payload,
    Query,
    Resolve,
    RunQuery,
    TagInfo,
    TagIovs,
)

__all__ = ["Head", "Reads"]


@dataclass(frozen=True)
class Head:
    """The version row: newest change time (µs) the answer depends on, and whether it is final."""

    version: int | None
    locked: bool
    row: Mapping[str, Any]


@dataclass(frozen=True)
class Result:
    head: Head
    rows: Sequence[Mapping[str, Any]] | None  # None: not fetched (the client's copy is current)
    data: bytes | None = None  # payload bytes
    path: Path | None = None  # or the file that holds them


class Reads:
    def __init__(
        self, engine: Engine, access: TableAccess, files: PayloadFiles | None = None
    ) -> None:
        self._engine = engine
        self.access = access
        self.files = files

    def read(self, query: Query, fresh_enough: Callable[[Head], bool]) -> Result:
        with self._engine.connect() as conn, conn.begin():
            statement, params = version_statement(query, self.access)
            row = conn.execute(statement, params).mappings().first()
            if row is None:
                raise NotFound(_missing(query))
            head = Head(version=row["version"], locked=bool(row["locked"]), row=dict(row))
            if fresh_enough(head):
                return Result(head, None)
            statement, params = answer_statement(query, self.access)
            result = conn.execute(statement, params).mappings().all()
        if isinstance(query, Payload):
            data = result[0]["data"]
            if in_files(int(head.row["size"]), data):
                return Result(head, (), path=self._payload_file(query.hash))
            return Result(head, (), data=bytes(data))
        return Result(head, [dict(r) for r in result])

    def _payload_file(self, digest: str) -> Path:
        if self.files is None:
            raise PayloadFileError(
                f"payload {digest}'s bytes are in a file store and this origin has none: "
                "set payload_store = files (and payload_dir)"
            )
        path = self.files.path(digest)
        if not path.is_file():
            raise PayloadFileError(f"payload {digest} is missing from {self.files.root}")
        return path

    def feed_head(self) -> int:
        """The feed position of the newest committed write."""
        with self._engine.connect() as conn:
            return int(conn.scalar(select(feed_head.c.seq).where(feed_head.c.id == 1)) or 0)

    def changes(self, after: int, limit: int) -> tuple[int, list[tuple[int, str]]]:
        """The feed's head and up to `limit` (seq, entry) after position `after`, in order."""
        with self._engine.connect() as conn, conn.begin():
            head = int(conn.scalar(select(feed_head.c.seq).where(feed_head.c.id == 1)) or 0)
            query = (
                select(changes.c.seq, changes.c.entry)
                .where(changes.c.seq > after)
                .order_by(changes.c.seq)
                .limit(limit)
            )
            rows = [(int(seq), str(entry)) for seq, entry in conn.execute(query)]
        return head, rows

    def problem(self) -> str | None:
        """What keeps the database from answering reads, or None: one row (at most) of every
        conditions table, so a missing, corrupt or unmigrated database shows, not only a dead
        connection. Cheap: five indexed `LIMIT 1` reads."""
        try:
            with self._engine.connect() as conn, conn.begin():
                for table in (global_tags, global_tag_map, tags, iovs, payloads):
                    conn.execute(select(literal(1)).select_from(table).limit(1)).all()
        except SQLAlchemyError as exc:
            return describe(exc)
        if self.files is not None:
            root = self.files.root
            if not root.is_dir() or not os.access(root, os.R_OK | os.W_OK | os.X_OK):
                return f"the payload store {root} is not a directory this process can write"
        return None


def _missing(query: Query) -> str:
    match query:
        case Payload(hash=digest):
            return f"payload {digest} does not exist"
        case GlobalTagMap(name=name) | Resolve(globaltag=name):
            return f"global tag {name!r} does not exist"
        case TagInfo(name=name) | TagIovs(tag=name) | History(of="tags", name=name):
            return f"tag {name!r} does not exist"
        case History(name=name):
            return f"global tag {name!r} does not exist"
        case RunQuery(run=run):
            return f"run {run} has no record"
    return f"nothing at {query.url()}"
