"""Moving payload bytes between the payloads table and the file store, all or nothing
(`outpost db payloads --to files|database`).

To files: every payload whose bytes are in the table is written to the store (checked against
its hash) first; only when all are there does one transaction empty their `data`. A failure on
the way leaves the table as it was (files already written are harmless: they are named by their
bytes). To the database: one transaction reads every payload the store holds (checked) into its
row; any missing or altered file rolls it all back. The files are removed only after it commits.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy import Engine, and_, bindparam, func, select, update

from origin.payloadfiles import PayloadFiles
from origin.schema import payloads

__all__ = ["MoveResult", "move_payloads"]

STORES = ("files", "database")
CHUNK = 500  # hashes per UPDATE … IN (…)


@dataclass(frozen=True)
class MoveResult:
    moved: int
    bytes: int


def move_payloads(engine: Engine, files: PayloadFiles, to: str) -> MoveResult:
    if to == "files":
        return _to_files(engine, files)
    if to == "database":
        return _to_database(engine, files)
    raise ValueError(f"--to {to!r}: expected one of {STORES}")


def _to_files(engine: Engine, files: PayloadFiles) -> MoveResult:
    in_table = and_(payloads.c.size > 0, func.length(payloads.c.data) > 0)
    with engine.connect() as conn:
        digests = list(conn.scalars(select(payloads.c.hash).where(in_table).order_by("hash")))
    moved_bytes = 0
    with engine.connect() as conn:  # one payload's bytes in memory at a time
        for digest in digests:
            data = conn.scalar(select(payloads.c.data).where(payloads.c.hash == digest))
            assert data is not None
            files.write(digest, bytes(data))
            moved_bytes += len(data)
    with engine.begin() as conn:
        for start in range(0, len(digests), CHUNK):
            chunk = digests[start : start + CHUNK]
            conn.execute(update(payloads).where(payloads.c.hash.in_(chunk)).values(data=b""))
    return MoveResult(len(digests), moved_bytes)


def _to_database(engine: Engine, files: PayloadFiles) -> MoveResult:
    in_files = and_(payloads.c.size > 0, func.length(payloads.c.data) == 0)
    moved: list[str] = []
    moved_bytes = 0
    statement = (
        update(payloads)
        .where(payloads.c.hash == bindparam("digest"))
        .values(data=bindparam("bytes"))
    )
    with engine.begin() as conn:
        digests = list(conn.scalars(select(payloads.c.hash).where(in_files).order_by("hash")))
        for digest in digests:
            data = files.read(digest)  # checked: a missing or altered file rolls it all back
            conn.execute(statement, {"digest": digest, "bytes": data})
            moved.append(digest)
            moved_bytes += len(data)
    for digest in moved:
        with contextlib.suppress(FileNotFoundError):
            files.path(digest).unlink()
    return MoveResult(len(moved), moved_bytes)
