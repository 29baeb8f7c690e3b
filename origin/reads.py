"""The read adapter: runs a query's version and answer statements in one read transaction.

The version row comes first; if the caller's `fresh_enough(head)` says the client's copy is
current, the answer is never run (a 304 costs one small query). Both statements run in one
transaction (WAL snapshot on SQLite, REPEATABLE READ on PostgreSQL), so the ETag always labels
the bytes it was computed for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, literal, select
from sqlalchemy.exc import SQLAlchemyError

from origin.db import describe
from origin.payloadfiles import PayloadFileError, PayloadFiles, in_files
from origin.query.encode import answer_document
from origin.query.sql import answer_statement, payload_head_statement, version_statement
from origin.query.table import TableAccess
from origin.schema import changes, feed_head, global_tag_map, global_tags, iovs, payloads, tags
from outpost.errors import NotFound
from outpost.urls import (
    GlobalTagDiff,
    GlobalTagMap,
    History,
    Payload,
    PayloadInfo,
    Query,
    Resolve,
    RunQuery,
    TableQuery,
    TagInfo,
    TagIovs,
)

__all__ = ["Answer", "Head", "Reads", "View"]


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


@dataclass(frozen=True)
class Answer:
    """A query's answer as the read API encodes it, as Python objects (`answer_document`)."""

    query: Query
    head: Head
    document: Any
    truncated: bool  # the answer statement had more rows than were read


class Reads:
    def __init__(
        self, engine: Engine, access: TableAccess, files: PayloadFiles | None = None
    ) -> None:
        self._engine = engine
        self.access = access
        self.files = files

    def read(self, query: Query, fresh_enough: Callable[[Head], bool]) -> Result:
        with self._engine.connect() as conn, conn.begin():
            head = self._head(conn, query)
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

    def _head(self, conn: Connection, query: Query) -> Head:
        """The version row of `query`; `NotFound` if its subject does not exist."""
        statement, params = version_statement(query, self.access)
        row = conn.execute(statement, params).mappings().first()
        if row is None or not row["exists"]:
            raise NotFound(_missing(query, None if row is None else dict(row)))
        return Head(version=row["version"], locked=bool(row["locked"]), row=dict(row))

    @contextmanager
    def view(self, max_rows: int) -> Iterator[View]:
        """One read transaction to answer several queries from (a page made of several sees
        one state of the database), each answer from at most `max_rows` rows."""
        with self._engine.connect() as conn, conn.begin():
            yield View(self, conn, max_rows)

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


class View:
    """Answers as the read API encodes them, as Python objects, from one read transaction
    (`Reads.view`): what the conditions browser (`origin.ui`) shows."""

    def __init__(self, reads: Reads, conn: Connection, max_rows: int) -> None:
        self._reads = reads
        self._conn = conn
        self.max_rows = max_rows

    def answer(self, query: Query) -> Answer:
        """`query`'s answer document (`NotFound` as the read API's); `truncated` when its
        answer statement had more than `max_rows` rows. Not for payload bytes or table
        queries, which have no document."""
        if isinstance(query, Payload | TableQuery):
            raise TypeError(f"{query!r} has no answer document")
        head = self._reads._head(self._conn, query)
        statement, params = answer_statement(query, self._reads.access)
        # streamed (a server-side cursor on PostgreSQL): the rows past the cap are never read
        streamed = statement.execution_options(stream_results=True)
        with self._conn.execute(streamed, params) as result:
            found = result.mappings().fetchmany(self.max_rows + 1)
        rows = [dict(r) for r in found[: self.max_rows]]
        document = answer_document(query, head.row, rows)
        return Answer(query, head, document, len(found) > self.max_rows)

    def payload_head(self, digest: str, count: int) -> bytes:
        """The first `count` bytes of a payload, read without loading the rest (from the
        database's blob with `substr`, or from the head of its file)."""
        statement, params = payload_head_statement(digest, count)
        row = self._conn.execute(statement, params).mappings().first()
        if row is None:
            raise NotFound(_missing(Payload(digest)))
        head, size = bytes(row["head"] or b""), int(row["size"])
        if not in_files(size, head):
            return head[:count]
        with self._reads._payload_file(digest).open("rb") as source:
            return source.read(count)


def _missing(query: Query, row: Mapping[str, Any] | None = None) -> str:
    match query:
        case Payload(hash=digest) | PayloadInfo(hash=digest):
            return f"payload {digest} does not exist"
        case GlobalTagDiff(a=a, b=b):
            missing = b if row is not None and row["a_exists"] else a
            return f"global tag {missing!r} does not exist"
        case GlobalTagMap(name=name) | Resolve(globaltag=name):
            return f"global tag {name!r} does not exist"
        case TagInfo(name=name) | TagIovs(tag=name) | History(of="tags", name=name):
            return f"tag {name!r} does not exist"
        case History(name=name):
            return f"global tag {name!r} does not exist"
        case RunQuery(run=run):
            return f"run {run} has no record"
    return f"nothing at {query.url()}"
