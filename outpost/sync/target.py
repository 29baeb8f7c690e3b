"""The target database of a sync: created and migrated if empty (as `outpost db init` does),
read with a few plain selects, written through the origin's own write session
(`origin.writes.WriteSession.copy_*`) in one transaction: all of a plan, or nothing.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy import select

from origin.app import system_clock
from origin.db import create_engines, migrate, normalise_url
from origin.feed import Provenance
from origin.inputs import NewIov, NewTag
from origin.schema import global_tag_map, global_tags, iovs, payloads, sync_positions, tags
from origin.writes import Copied, GlobalTagCopy, Writes
from outpost.sync.plan import Batch, GlobalTagState, Iov, MapEntry, Plan, TagState

__all__ = ["Target"]

CHUNK = 500  # names or hashes per IN (…)
PREFETCH = 4  # payloads fetched ahead of the one being written


class Target:
    """A conditions database written by a sync (`url`: a SQLAlchemy URL, as `--db` takes)."""

    def __init__(self, url: str, clock: Callable[[], int] = system_clock) -> None:
        self.url = normalise_url(url)
        migrate(self.url)
        self.engines = create_engines(self.url)
        self.clock = clock

    def close(self) -> None:
        self.engines.dispose()

    def position(self, source: str) -> int | None:
        """The source feed position this database holds the changes up to, if it was synced."""
        with self.engines.reader.connect() as conn:
            found = conn.scalar(
                select(sync_positions.c.seq).where(sync_positions.c.source == source)
            )
        return None if found is None else int(found)

    def state(
        self, tag_names: Iterable[str], globaltag_names: Iterable[str]
    ) -> tuple[dict[str, TagState], dict[str, GlobalTagState]]:
        """What the target holds of these tags and global tags, in the plan's terms."""
        found_tags: dict[str, TagState] = {}
        found_gts: dict[str, GlobalTagState] = {}
        with self.engines.reader.connect() as conn, conn.begin():
            for chunk in _chunks(sorted(set(tag_names))):
                rows = conn.execute(select(tags).where(tags.c.name.in_(chunk))).mappings().all()
                batches: dict[str, dict[int, list[Iov]]] = {r["name"]: {} for r in rows}
                held = select(
                    iovs.c.tag_name,
                    iovs.c.channel,
                    iovs.c.since,
                    iovs.c.insertion_time,
                    iovs.c.payload_hash,
                ).where(iovs.c.tag_name.in_(chunk))
                for name, channel, since, inserted, payload in conn.execute(held):
                    batches[name].setdefault(int(inserted), []).append(
                        Iov(int(channel), int(since), payload)
                    )
                for r in rows:
                    found_tags[r["name"]] = TagState(
                        name=r["name"],
                        time_type=r["time_type"],
                        payload_type=r["payload_type"],
                        description=r["description"],
                        state=r["state"],
                        created_at=int(r["created_at"]),
                        modified_at=int(r["modified_at"]),
                        batches=tuple(
                            Batch(t, tuple(sorted(rows_)))
                            for t, rows_ in sorted(batches[r["name"]].items())
                        ),
                    )
            for chunk in _chunks(sorted(set(globaltag_names))):
                rows = (
                    conn.execute(select(global_tags).where(global_tags.c.name.in_(chunk)))
                    .mappings()
                    .all()
                )
                entries: dict[str, list[MapEntry]] = {r["name"]: [] for r in rows}
                gtm = global_tag_map.c
                held_map = select(
                    gtm.global_tag, gtm.record, gtm.label, gtm.tag_name, gtm.insertion_time
                ).where(gtm.global_tag.in_(chunk))
                for gt, record, label, tag_name, inserted in conn.execute(held_map):
                    entries[gt].append(MapEntry(int(inserted), record, label, tag_name))
                for r in rows:
                    found_gts[r["name"]] = GlobalTagState(
                        name=r["name"],
                        state=r["state"],
                        description=r["description"],
                        created_at=int(r["created_at"]),
                        modified_at=int(r["modified_at"]),
                        entries=tuple(sorted(entries[r["name"]])),
                    )
        return found_tags, found_gts

    def payloads_held(self, digests: Iterable[str]) -> set[str]:
        held: set[str] = set()
        with self.engines.reader.connect() as conn:
            for chunk in _chunks(sorted(set(digests))):
                held.update(conn.scalars(select(payloads.c.hash).where(payloads.c.hash.in_(chunk))))
        return held

    def set_position(self, source: str, seq: int) -> None:
        with Writes(self.engines.writer, self.clock).session() as session:
            session.set_sync_position(source, seq)

    def apply(
        self,
        plan: Plan,
        source: str,
        position: int,
        fetch: Callable[[str], tuple[bytes, str, int, str | None]],
    ) -> None:
        """Write `plan` in one transaction, with `position` as where the sync from `source`
        stands. `fetch(hash)` gives a payload's verified bytes, object type, creation time and
        uploader; it is called ahead (a few at a time, in threads) of the writes that need
        them, and any error it raises rolls everything back."""
        whole = Copied(None, Provenance(source, position))

        def copied(seq: int | None, by: str | None) -> Copied:
            return Copied(by, Provenance(source, position if seq is None else seq))

        writes = Writes(self.engines.writer, self.clock, who=_who(source))
        with writes.session() as session:
            for digest, (data, object_type, created_at, by) in _prefetched(plan.payloads, fetch):
                session.copy_payload(digest, data, object_type, created_at, copied(None, by))
            for tag_plan in plan.tags:
                tag = tag_plan.source
                if tag_plan.create:
                    new = NewTag(tag.name, tag.time_type, tag.payload_type, tag.description)
                    session.copy_tag(new, tag.created_at, copied(*tag.created))
                for batch in tag_plan.batches:
                    rows = tuple(NewIov(i.since, i.payload, i.channel) for i in batch.iovs)
                    session.copy_iovs(tag.name, batch.inserted, rows, copied(batch.seq, batch.by))
                if tag_plan.lock:
                    session.copy_lock(tag.name, tag.modified_at, copied(*tag.locked))
            for gt_plan in plan.globaltags:
                gt = gt_plan.source
                origins = {t: copied(seq, by) for t, (seq, by) in gt.changes.items()}
                session.copy_global_tag(
                    GlobalTagCopy(
                        name=gt.name,
                        state=gt.state,
                        description=gt.description,
                        created_at=gt.created_at,
                        modified_at=gt.modified_at,
                        entries=tuple(
                            (e.record, e.label, e.tag, e.inserted) for e in gt_plan.entries
                        ),
                        origin=origins.get(gt.modified_at, whole),
                        origins=origins,
                    )
                )
            session.set_sync_position(source, position)


def _prefetched(digests: tuple[str, ...], fetch: Callable[[str], Any]) -> Iterator[tuple[str, Any]]:
    """(hash, fetch(hash)) in order, at most `PREFETCH` fetches ahead: bounded memory."""
    if not digests:
        return
    with ThreadPoolExecutor(PREFETCH, thread_name_prefix="outpost-sync") as pool:
        pending: dict[int, Future[Any]] = {}
        try:
            for index, digest in enumerate(digests):
                for ahead in range(index, min(index + PREFETCH, len(digests))):
                    if ahead not in pending:
                        pending[ahead] = pool.submit(fetch, digests[ahead])
                yield digest, pending.pop(index).result()
        finally:
            for future in pending.values():
                future.cancel()


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _who(source: str) -> str:
    """Who writes a copy, where the source does not say who made the change."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return f"{user} (outpost sync from {source})"[:128]
