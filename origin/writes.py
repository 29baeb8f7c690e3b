"""The write side: validated inputs (`origin.inputs`) applied in one transaction, all or nothing.

Tags are append-only: an IOV batch adds rows (a correction re-inserts an existing `since` with a
later insertion time), nothing is updated or deleted, so every answer ever served can be
reproduced with a snapshot. Every write is stamped by one database-wide monotonic clock: later
than the wall clock and later than any change already recorded, so versions (and so ETags) only
ever move forward, even if the machine's clock steps back.

`Writes` runs each operation in its own transaction; `Writes.session()` gives a `WriteSession`
whose operations all share one transaction (what `outpost db load` uses).

A run record (`put_run_record`) is the one write that reads conditions: it resolves the global
tag for the run with the read API's own statements (`origin.query.sql`), inside the write
transaction and after taking the feed's lock, so the conditions it checks the attested digest
against, the snapshot it records and the record itself are one state of the database.

Every change is also recorded in the change feed (`origin.feed`), in the same transaction: a
reader of the feed sees a write exactly when it is committed. A write that changes nothing (the
same payload again, a tag that exists as it is) records nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from origin.feed import (
    Change,
    Provenance,
    globaltag_change,
    iovs_change,
    lock_change,
    payload_change,
    run_change,
    tag_change,
)
from origin.inputs import GlobalTagUpdate, MapEntry, NewIov, NewTag, RunRecordPost, check_since
from origin.payloadfiles import PayloadFiles
from origin.query.encode import resolve_records
from origin.query.sql import answer_statement, version_statement
from origin.schema import (
    changes,
    feed_head,
    global_tag_map,
    global_tags,
    iovs,
    payloads,
    runs,
    sync_positions,
    tags,
)
from outpost.conditions import conditions, conditions_digest
from outpost.errors import Conflict, NotFound
from outpost.urls import Resolve

__all__ = ["Copied", "GlobalTagCopy", "RunRecordWritten", "WriteSession", "Writes"]

audit = logging.getLogger("outpost.origin.audit")

Clock = Callable[[], int]


@dataclass(frozen=True)
class Copied:
    """Who made a copied change at the source, and where it was copied from."""

    by: str | None
    source: Provenance

    def mark(self, change: Change) -> Change:
        return dataclasses.replace(change, by=self.by, source=self.source)


@dataclass(frozen=True)
class GlobalTagCopy:
    """A global tag as the source holds it, and the map entries this database lacks:
    (record, label, tag or None for a dropped record, insertion time)."""

    name: str
    state: str
    description: str
    created_at: int
    modified_at: int
    entries: tuple[tuple[str, str, str | None, int], ...]
    origin: Copied  # of the global tag as a whole (its state)
    origins: dict[int, Copied]  # of the entries inserted at each time, where known


@dataclass(frozen=True)
class RunRecordWritten:
    """The answer to a run record's POST: `created` False for a retry of the same record."""

    run: int
    created: bool
    digest: str
    snapshot: int  # µs since the epoch: a resolve pinned to it gives the recorded conditions


class Writes:
    """Applies writes to the database; `clock()` gives microseconds since the epoch.

    Every change is recorded with who made it (`who`: the writer token's name, or what a
    command-line import says of itself), kept in the feed's `changes` table, shown in the
    histories of the read API (`/v1/tags/T/history`, `/v1/globaltags/G/history`) and logged
    on `outpost.origin.audit` once committed."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        on_commit: Callable[[int], None] | None = None,
        files: PayloadFiles | None = None,
        who: str | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.on_commit = on_commit  # told the feed position of each committed write
        self.files = files  # payload bytes go here, not into the table
        self.who = who  # who writes, unless an operation names someone else

    @contextlib.contextmanager
    def session(self, who: str | None = None) -> Iterator[WriteSession]:
        """Several writes in one transaction: all of them happen, or none."""
        with self._engine.begin() as conn:
            session = WriteSession(conn, self._clock, self.files, who or self.who)
            yield session
        for seq, change in session.recorded:
            who = change.by if change.by is not None else session.who
            if change.source is None:
                audit.info("%s %s by %s at feed position %d", change.kind, change.subject, who, seq)
            else:
                audit.info(
                    "%s %s by %s at feed position %d, copied from %s (its position %d)",
                    change.kind,
                    change.subject,
                    who,
                    seq,
                    change.source.url,
                    change.source.seq,
                )
        if session.last_seq is not None and self.on_commit is not None:
            self.on_commit(session.last_seq)

    def put_payload(
        self, data: bytes, object_type: str, who: str | None = None
    ) -> tuple[str, bool]:
        try:
            with self.session(who) as session:
                return session.put_payload(data, object_type)
        except IntegrityError:  # a concurrent upload of the same bytes won the race
            return hashlib.sha256(data).hexdigest(), False

    def create_tag(self, tag: NewTag, who: str | None = None) -> bool:
        with self.session(who) as session:
            return session.create_tag(tag)

    def append_iovs(self, tag_name: str, batch: tuple[NewIov, ...], who: str | None = None) -> int:
        with self.session(who) as session:
            return session.append_iovs(tag_name, batch)

    def lock_tag(self, tag_name: str, who: str | None = None) -> bool:
        with self.session(who) as session:
            return session.lock_tag(tag_name)

    def put_global_tag(self, name: str, change: GlobalTagUpdate, who: str | None = None) -> bool:
        with self.session(who) as session:
            return session.put_global_tag(name, change)

    def put_run_record(
        self, run: int, post: RunRecordPost, who: str | None = None
    ) -> RunRecordWritten:
        try:
            with self.session(who) as session:
                return session.put_run_record(run, post)
        except IntegrityError:  # a concurrent POST for this run committed first: now a retry
            with self.session(who) as session:
                return session.put_run_record(run, post)


class WriteSession:
    """Write operations inside one open transaction, by `who`."""

    def __init__(
        self,
        conn: Connection,
        clock: Clock,
        files: PayloadFiles | None = None,
        who: str | None = None,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._files = files
        self.who = None if who is None else who[:128]  # the column's size
        self.last_seq: int | None = None  # the feed position of the last change recorded
        self.recorded: list[tuple[int, Change]] = []  # logged once committed

    def _record(self, change: Change) -> None:
        """Give `change` the next feed position (waiting, on PostgreSQL, for a concurrent
        writer to commit first: positions follow commit order) and record it."""
        bump = update(feed_head).where(feed_head.c.id == 1).values(seq=feed_head.c.seq + 1)
        seq = self._conn.execute(bump.returning(feed_head.c.seq)).scalar_one()
        who = self.who if change.by is None else change.by[:128]
        row = {
            "seq": seq,
            "time": change.time,
            "kind": change.kind,
            "subject": change.subject,
            "entry": change.entry(who).decode(),
            "who": who,
        }
        self._conn.execute(insert(changes).values(**row))
        self.last_seq = seq
        self.recorded.append((seq, change))

    def _now(self) -> int:
        """Later than the clock and than every change already recorded. Takes the feed's
        lock first (PostgreSQL; SQLite has one writer at a time anyway), so a concurrent
        writer's time, feed position and commit all come after this one's."""
        self._conn.execute(select(feed_head.c.seq).where(feed_head.c.id == 1).with_for_update())
        newest = [
            select(func.max(iovs.c.insertion_time)).scalar_subquery(),
            select(func.max(global_tag_map.c.insertion_time)).scalar_subquery(),
            select(func.max(tags.c.modified_at)).scalar_subquery(),
            select(func.max(global_tags.c.modified_at)).scalar_subquery(),
        ]
        recorded = self._conn.execute(select(*newest)).one()
        return max([self._clock(), *((t or 0) + 1 for t in recorded)])

    def put_payload(self, data: bytes, object_type: str) -> tuple[str, bool]:
        """Store bytes under their SHA-256; returns (hash, created). Idempotent."""
        digest = hashlib.sha256(data).hexdigest()
        if self._conn.scalar(select(payloads.c.hash).where(payloads.c.hash == digest)):
            return digest, False
        now = self._clock()
        if self._files is not None:  # the file first: a row never names bytes that are not there
            self._files.write(digest, data)
        self._conn.execute(
            insert(payloads).values(
                hash=digest,
                data=data if self._files is None else b"",
                size=len(data),
                object_type=object_type,
                created_at=now,
            )
        )
        self._record(payload_change(digest, len(data), object_type, now))
        return digest, True

    def create_tag(self, tag: NewTag) -> bool:
        existing = (
            self._conn.execute(select(tags).where(tags.c.name == tag.name)).mappings().first()
        )
        if existing is not None:
            fields = ("time_type", "payload_type", "description")
            if any(existing[k] != getattr(tag, k) for k in fields):
                raise Conflict(
                    f"tag {tag.name!r} exists with other metadata",
                    accepted={k: existing[k] for k in fields},
                )
            return False
        now = self._now()
        self._insert_tag(tag, now)
        self._record(tag_change(tag.name, now))
        return True

    def _insert_tag(self, tag: NewTag, created_at: int) -> None:
        """A new open tag, created (and last modified) at `created_at`."""
        self._conn.execute(
            insert(tags).values(
                name=tag.name,
                time_type=tag.time_type,
                payload_type=tag.payload_type,
                description=tag.description,
                state="open",
                created_at=created_at,
                modified_at=created_at,
            )
        )

    def append_iovs(self, tag_name: str, batch: tuple[NewIov, ...]) -> int:
        """Append a batch to an open tag; returns the insertion time (µs) all rows share."""
        self._appendable(tag_name, batch)
        wanted = sorted({i.payload for i in batch})
        known: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found = self._conn.scalars(select(payloads.c.hash).where(payloads.c.hash.in_(chunk)))
            known.update(found)
        missing = [h for h in wanted if h not in known]
        if missing:
            raise NotFound(
                f"payloads not uploaded yet: {missing[:20]}", accepted="POST /v1/payloads first"
            )
        now = self._now()
        self._record(self._insert_iovs(tag_name, now, batch, modified_at=now))
        return now

    def _appendable(self, tag_name: str, batch: tuple[NewIov, ...]) -> dict[str, Any]:
        """The tag, locked for this transaction, if `batch` may be appended to it: the tag is
        open and every since is valid for its time type."""
        tag = self._tag_for_update(tag_name)
        if tag["state"] == "locked":
            raise Conflict(f"tag {tag_name!r} is locked; it never changes again")
        for item in batch:
            check_since(tag["time_type"], item.since)
        return tag

    def _insert_iovs(
        self, tag_name: str, inserted: int, batch: tuple[NewIov, ...], *, modified_at: int
    ) -> Change:
        """Insert `batch` with the insertion time `inserted` and set the tag's modification
        time; the feed entry to record."""
        rows = [
            {
                "tag_name": tag_name,
                "channel": i.channel,
                "since": i.since,
                "insertion_time": inserted,
                "payload_hash": i.payload,
            }
            for i in batch
        ]
        self._conn.execute(insert(iovs), rows)
        modified = update(tags).where(tags.c.name == tag_name).values(modified_at=modified_at)
        self._conn.execute(modified)
        return iovs_change(tag_name, inserted, [(i.channel, i.since, i.payload) for i in batch])

    def lock_tag(self, tag_name: str) -> bool:
        tag = self._tag_for_update(tag_name)
        if tag["state"] == "locked":
            return False
        now = self._now()
        locked = update(tags).where(tags.c.name == tag_name)
        self._conn.execute(locked.values(state="locked", modified_at=now))
        self._record(lock_change(tag_name, now))
        return True

    def put_global_tag(self, name: str, change: GlobalTagUpdate) -> bool:
        """Create or replace a global tag's map; returns True if it was created."""
        current = (
            self._conn.execute(
                select(global_tags).where(global_tags.c.name == name).with_for_update()
            )
            .mappings()
            .first()
        )
        if current is not None and current["state"] == "locked":
            raise Conflict(f"global tag {name!r} is locked; it never changes again")
        wanted = sorted({e.tag for e in change.entries})
        found = set(self._conn.scalars(select(tags.c.name).where(tags.c.name.in_(wanted))))
        missing = [t for t in wanted if t not in found]
        if missing:
            raise NotFound(f"tags do not exist: {missing[:20]}", accepted="POST /v1/tags first")
        now = self._now()
        if current is None:
            self._conn.execute(
                insert(global_tags).values(
                    name=name,
                    state="locked" if change.lock else "open",
                    description=change.description or "",
                    created_at=now,
                    modified_at=now,
                )
            )
            self._write_map(name, change.entries, now)
            self._record(globaltag_change(name, "locked" if change.lock else "open", now))
            return True
        values: dict[str, Any] = {}
        if change.description is not None and current["description"] != change.description:
            values["description"] = change.description
        if change.lock:
            values["state"] = "locked"
        if self._write_map(name, change.entries, now) or values:
            self._conn.execute(
                update(global_tags)
                .where(global_tags.c.name == name)
                .values(**values, modified_at=now)
            )
            state = values.get("state", current["state"])
            self._record(globaltag_change(name, state, now))
        return False

    def put_run_record(self, run: int, post: RunRecordPost) -> RunRecordWritten:
        """Record that run `run` was taken with the conditions of `post.globaltag` for (run,
        lumi) as the database holds them now, if their digest is the attested one. Written
        once: the same record again is a retry (created False), any other is a `Conflict`."""
        now = self._now()  # the feed's lock: no other write commits until this one has
        existing = self._run_record(run)
        if existing is not None:
            recorded = (existing["globaltag"], existing["lumi"], existing["digest"])
            if recorded == (post.globaltag, post.lumi, post.digest):
                return RunRecordWritten(run, False, post.digest, int(existing["snapshot"]))
            raise Conflict(
                f"run {run} has a record already ({existing['globaltag']}, lumi "
                f"{existing['lumi']}); run records never change",
                accepted=existing["digest"],
            )
        query = Resolve(post.globaltag, run=run, lumi=post.lumi)
        statement, params = version_statement(query)
        head = self._conn.execute(statement, params).mappings().first()
        if head is None:
            raise NotFound(
                f"global tag {post.globaltag!r} does not exist", accepted="PUT /v1/globaltags first"
            )
        statement, params = answer_statement(query)
        rows = self._conn.execute(statement, params).mappings().all()
        records = resolve_records([dict(r) for r in rows])
        digest = conditions_digest(records)
        if digest != post.digest:
            raise Conflict(
                f"the conditions of {post.globaltag} for run {run} (lumi {post.lumi}) changed "
                f"since the attestation: the origin's digest is {digest}, the attested "
                f"{post.digest}; nothing was recorded",
                accepted=digest,
            )
        snapshot = int(head["version"] or 0)  # the newest row this resolve sees
        newest = self._conn.scalar(select(func.max(runs.c.created_at)))
        created_at = max(now, (newest or 0) + 1)  # later than every record: list ETags move
        self._conn.execute(
            insert(runs).values(
                run=run,
                globaltag=post.globaltag,
                lumi=post.lumi,
                digest=digest,
                snapshot=snapshot,
                records=orjson.dumps(conditions(records)).decode(),
                attestation=post.attestation,
                who=self.who,
                created_at=created_at,
            )
        )
        self._record(run_change(run, post.globaltag, post.lumi, digest, created_at))
        return RunRecordWritten(run, True, digest, snapshot)

    # --- copies (`outpost sync`): another database's objects as they are there ------------
    #
    # A copy keeps the source's times (creation, insertion, modification), so an answer about
    # the copied objects, snapshots included, is the same bytes with the same validators on
    # both sides. Each copied change is recorded in this database's feed, with who made it at
    # the source (`by`) and where it came from (`source`). The caller (`outpost.sync`) has
    # checked that the copy does not contradict what this database holds (a conflict).

    def copy_payload(
        self, digest: str, data: bytes, object_type: str, created_at: int, origin: Copied
    ) -> bool:
        """Store bytes copied from elsewhere with their creation time; False if held already.
        `ValueError` if they are not the bytes of `digest`."""
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ValueError(f"payload bytes hash to {actual}, not {digest}")
        if self._conn.scalar(select(payloads.c.hash).where(payloads.c.hash == digest)):
            return False
        self._lock_feed()
        if self._files is not None:
            self._files.write(digest, data)
        self._conn.execute(
            insert(payloads).values(
                hash=digest,
                data=data if self._files is None else b"",
                size=len(data),
                object_type=object_type,
                created_at=created_at,
            )
        )
        change = payload_change(digest, len(data), object_type, created_at)
        self._record(origin.mark(change))
        return True

    def copy_tag(self, tag: NewTag, created_at: int, origin: Copied) -> None:
        """Create a tag copied from elsewhere, open, as created at `created_at`."""
        self._lock_feed()
        self._insert_tag(tag, created_at)
        self._record(origin.mark(tag_change(tag.name, created_at)))

    def copy_iovs(
        self, tag_name: str, inserted: int, batch: tuple[NewIov, ...], origin: Copied
    ) -> None:
        tag = self._appendable(tag_name, batch)
        self._lock_feed()
        modified = max(int(tag["modified_at"]), inserted)
        self._record(
            origin.mark(self._insert_iovs(tag_name, inserted, batch, modified_at=modified))
        )

    def copy_lock(self, tag_name: str, modified_at: int, origin: Copied) -> None:
        """Lock a tag as it was locked elsewhere, at `modified_at`."""
        self._tag_for_update(tag_name)
        self._lock_feed()
        locked = update(tags).where(tags.c.name == tag_name)
        self._conn.execute(locked.values(state="locked", modified_at=modified_at))
        self._record(origin.mark(lock_change(tag_name, modified_at)))

    def copy_global_tag(self, copy: GlobalTagCopy) -> None:
        """Create or extend a global tag as it is elsewhere: its map entries with their own
        insertion times (tombstones included), then its state, description and times."""
        self._lock_feed()
        exists = self._conn.scalar(
            select(global_tags.c.name).where(global_tags.c.name == copy.name)
        )
        if exists is None:
            self._conn.execute(
                insert(global_tags).values(
                    name=copy.name,
                    state="open",
                    description=copy.description,
                    created_at=copy.created_at,
                    modified_at=copy.created_at,
                )
            )
        groups: dict[int, list[dict[str, Any]]] = {}
        for record, label, tag_name, inserted in copy.entries:
            row = {"record": record, "label": label, "tag_name": tag_name}
            groups.setdefault(inserted, []).append(
                {"global_tag": copy.name, **row, "insertion_time": inserted}
            )
        for inserted in sorted(groups):
            self._conn.execute(insert(global_tag_map), groups[inserted])
            origin = copy.origins.get(inserted, copy.origin)
            self._record(origin.mark(globaltag_change(copy.name, "open", inserted)))
        self._conn.execute(
            update(global_tags)
            .where(global_tags.c.name == copy.name)
            .values(state=copy.state, description=copy.description, modified_at=copy.modified_at)
        )
        if copy.state == "locked" or not groups:
            change = globaltag_change(copy.name, copy.state, copy.modified_at)
            self._record(copy.origin.mark(change))

    def set_sync_position(self, source: str, seq: int) -> None:
        """Where the sync from `source` stands in its change feed (`sync_positions`)."""
        row = {"seq": seq, "updated_at": self._clock()}
        done = self._conn.execute(
            update(sync_positions).where(sync_positions.c.source == source).values(**row)
        )
        if not done.rowcount:
            self._conn.execute(insert(sync_positions).values(source=source, **row))

    def _lock_feed(self) -> None:
        """The feed's lock (`_now`): copies commit in feed order with every other write."""
        self._conn.execute(select(feed_head.c.seq).where(feed_head.c.id == 1).with_for_update())

    def _run_record(self, run: int) -> dict[str, Any] | None:
        """What is recorded for `run` already (globaltag, lumi, digest, snapshot), if anything."""
        r = runs.c
        found = select(r.globaltag, r.lumi, r.digest, r.snapshot).where(r.run == run)
        row = self._conn.execute(found).mappings().first()
        return None if row is None else dict(row)

    def _write_map(self, name: str, entries: tuple[MapEntry, ...], now: int) -> bool:
        """Insert only what differs from the current map (tombstones for dropped records)."""
        gtm = global_tag_map.c
        rows = self._conn.execute(
            select(gtm.record, gtm.label, gtm.tag_name, gtm.insertion_time).where(
                gtm.global_tag == name
            )
        ).all()
        latest: dict[tuple[str, str], tuple[int, str | None]] = {}
        for record, label, tag_name, inserted in rows:
            if (record, label) not in latest or inserted > latest[(record, label)][0]:
                latest[(record, label)] = (inserted, tag_name)
        current = {key: tag for key, (_, tag) in latest.items() if tag is not None}
        target: dict[tuple[str, str], str | None] = {(e.record, e.label): e.tag for e in entries}
        target.update({key: None for key in current if key not in target})
        new_rows = [
            {
                "global_tag": name,
                "record": key[0],
                "label": key[1],
                "tag_name": tag,
                "insertion_time": now,
            }
            for key, tag in sorted(target.items(), key=lambda kv: kv[0])
            if current.get(key) != tag
        ]
        if new_rows:
            self._conn.execute(insert(global_tag_map), new_rows)
        return bool(new_rows)

    def _tag_for_update(self, name: str) -> dict[str, Any]:
        tag = (
            self._conn.execute(select(tags).where(tags.c.name == name).with_for_update())
            .mappings()
            .first()
        )
        if tag is None:
            raise NotFound(f"tag {name!r} does not exist", accepted="POST /v1/tags first")
        return dict(tag)
