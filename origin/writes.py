"""The write side: validated inputs applied in one transaction each, all or nothing.

Tags are append-only: an IOV batch adds rows (a correction re-inserts an existing `since` with a
later insertion time), nothing is updated or deleted, so every answer ever served can be
reproduced with a snapshot. Insertion times never go backwards within a tag, even if the clock
does. The body parsers are pure; `Writes` is the adapter that runs them against the database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from origin.schema import TIME_TYPES, global_tag_map, global_tags, iovs, payloads, tags
from outpost.errors import BadRequest, Conflict, NotFound
from outpost.urls import INT64_MAX, RUN_MAX, is_plain_name

__all__ = [
    "GlobalTagUpdate",
    "MapEntry",
    "NewIov",
    "NewTag",
    "Writes",
    "parse_global_tag",
    "parse_iovs",
    "parse_new_tag",
]

MAX_TEXT = 4096


@dataclass(frozen=True)
class NewTag:
    name: str
    time_type: str
    payload_type: str
    description: str = ""


@dataclass(frozen=True)
class NewIov:
    since: int
    payload: str
    channel: int = 0


@dataclass(frozen=True)
class MapEntry:
    record: str
    label: str
    tag: str


@dataclass(frozen=True)
class GlobalTagUpdate:
    entries: tuple[MapEntry, ...]
    description: str | None = None
    lock: bool = False


# --- pure parsing of request bodies --------------------------------------------------------


def _object(doc: Any, what: str, fields: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise BadRequest(f"{what} must be a JSON object", accepted=dict(fields))
    unknown = sorted(set(doc) - set(fields))
    if unknown:
        raise BadRequest(f"{what} has unknown fields {unknown}", accepted=dict(fields))
    return doc


def _text(doc: dict[str, Any], key: str, what: str, *, required: bool = True) -> str:
    value = doc.get(key, None if required else "")
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadRequest(f"{what}.{key} must be a string of at most {MAX_TEXT} characters")
    return value


def _plain(value: str, what: str) -> str:
    if not is_plain_name(value):
        raise BadRequest(
            f"{what} {value[:200]!r} is not a plain name",
            accepted="letters, digits, '_', '.', '-', starting with a letter or digit, <= 128",
        )
    return value


def _integer(value: Any, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest(f"{what}={value!r} is not an integer in {low}..{high}")
    return value


def parse_new_tag(doc: Any) -> NewTag:
    fields = {
        "name": "plain name",
        "time_type": "|".join(TIME_TYPES),
        "payload_type": "plain name",
        "description": "text",
    }
    doc = _object(doc, "tag", fields)
    time_type = _text(doc, "time_type", "tag")
    if time_type not in TIME_TYPES:
        raise BadRequest(f"time_type {time_type!r} is not known", accepted=list(TIME_TYPES))
    return NewTag(
        name=_plain(_text(doc, "name", "tag"), "tag name"),
        time_type=time_type,
        payload_type=_plain(_text(doc, "payload_type", "tag"), "payload type"),
        description=_text(doc, "description", "tag", required=False),
    )


def parse_iovs(doc: Any, *, max_batch: int = 100_000) -> tuple[NewIov, ...]:
    fields = {"since": "int64 >= 0", "payload": "sha256 hex", "channel": "int64 >= 0"}
    doc = _object(doc, "body", {"iovs": f"list of {fields}"})
    items = doc.get("iovs")
    if not isinstance(items, list) or not 0 < len(items) <= max_batch:
        raise BadRequest(f"iovs must be a list of 1..{max_batch} IOVs", accepted=fields)
    batch = []
    for index, raw in enumerate(items):
        item = _object(raw, f"iovs[{index}]", fields)
        digest = _text(item, "payload", f"iovs[{index}]").lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise BadRequest(
                f"iovs[{index}].payload is not a SHA-256 hash", accepted="64 hex digits"
            )
        batch.append(
            NewIov(
                since=_integer(item.get("since"), f"iovs[{index}].since", 0, INT64_MAX),
                payload=digest,
                channel=_integer(item.get("channel", 0), f"iovs[{index}].channel", 0, INT64_MAX),
            )
        )
    keys = [(i.channel, i.since) for i in batch]
    if len(set(keys)) != len(keys):
        raise BadRequest("the batch inserts the same (channel, since) twice")
    return tuple(batch)


def parse_global_tag(doc: Any) -> GlobalTagUpdate:
    fields = {"map": "list of {record, label, tag}", "description": "text", "state": "open|locked"}
    doc = _object(doc, "global tag", fields)
    entries = doc.get("map")
    if not isinstance(entries, list):
        raise BadRequest("map must be a list of {record, label, tag}", accepted=fields)
    parsed = []
    for index, raw in enumerate(entries):
        item = _object(
            raw,
            f"map[{index}]",
            {"record": "plain name", "label": "plain name or ''", "tag": "plain name"},
        )
        label = _text(item, "label", f"map[{index}]", required=False)
        parsed.append(
            MapEntry(
                record=_plain(_text(item, "record", f"map[{index}]"), "record"),
                label=_plain(label, "label") if label else "",
                tag=_plain(_text(item, "tag", f"map[{index}]"), "tag"),
            )
        )
    keys = [(e.record, e.label) for e in parsed]
    if len(set(keys)) != len(keys):
        raise BadRequest("the map names one (record, label) twice")
    state = doc.get("state", "open")
    if state not in ("open", "locked"):
        raise BadRequest(f"state {state!r} is not known", accepted=["open", "locked"])
    description = doc.get("description")
    if description is not None:
        description = _text(doc, "description", "global tag")
    return GlobalTagUpdate(tuple(parsed), description=description, lock=state == "locked")


def check_since(time_type: str, since: int) -> None:
    """A run tag's since is a run number; run_lumi and timestamp use the whole int64 range."""
    if time_type == "run" and since > RUN_MAX:
        raise BadRequest(f"since={since} is not a run number", accepted=f"0..{RUN_MAX}")


# --- the adapter ---------------------------------------------------------------------------


class Writes:
    """Applies writes to the database, one transaction each; `clock()` gives µs since the epoch."""

    def __init__(self, engine: Engine, clock: Callable[[], int]) -> None:
        self._engine = engine
        self._clock = clock

    def put_payload(self, data: bytes, object_type: str) -> tuple[str, bool]:
        """Store bytes under their SHA-256; returns (hash, created). Idempotent."""
        _plain(object_type, "object_type")
        digest = hashlib.sha256(data).hexdigest()
        try:
            with self._engine.begin() as conn:
                if conn.scalar(select(payloads.c.hash).where(payloads.c.hash == digest)):
                    return digest, False
                conn.execute(
                    insert(payloads).values(
                        hash=digest,
                        data=data,
                        size=len(data),
                        object_type=object_type,
                        created_at=self._clock(),
                    )
                )
        except IntegrityError:  # a concurrent upload of the same bytes won the race
            return digest, False
        return digest, True

    def create_tag(self, tag: NewTag) -> bool:
        with self._engine.begin() as conn:
            existing = conn.execute(select(tags).where(tags.c.name == tag.name)).mappings().first()
            if existing is not None:
                same = all(
                    existing[k] == getattr(tag, k)
                    for k in ("time_type", "payload_type", "description")
                )
                if not same:
                    raise Conflict(
                        f"tag {tag.name!r} exists with other metadata", accepted=dict(existing)
                    )
                return False
            now = self._clock()
            conn.execute(
                insert(tags).values(
                    name=tag.name,
                    time_type=tag.time_type,
                    payload_type=tag.payload_type,
                    description=tag.description,
                    state="open",
                    created_at=now,
                    modified_at=now,
                )
            )
        return True

    def append_iovs(self, tag_name: str, batch: tuple[NewIov, ...]) -> int:
        """Append a batch to an open tag; returns the insertion time (µs) all rows share."""
        with self._engine.begin() as conn:
            tag = self._tag_for_update(conn, tag_name)
            if tag["state"] == "locked":
                raise Conflict(f"tag {tag_name!r} is locked; it never changes again")
            for item in batch:
                check_since(tag["time_type"], item.since)
            wanted = sorted({i.payload for i in batch})
            known: set[str] = set()
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                known.update(
                    conn.scalars(select(payloads.c.hash).where(payloads.c.hash.in_(chunk)))
                )
            missing = [h for h in wanted if h not in known]
            if missing:
                raise NotFound(
                    f"payloads not uploaded yet: {missing[:20]}", accepted="POST /v1/payloads first"
                )
            newest = conn.scalar(
                select(func.max(iovs.c.insertion_time)).where(iovs.c.tag_name == tag_name)
            )
            now = max(self._clock(), (newest or 0) + 1)
            conn.execute(
                insert(iovs),
                [
                    {
                        "tag_name": tag_name,
                        "channel": i.channel,
                        "since": i.since,
                        "insertion_time": now,
                        "payload_hash": i.payload,
                    }
                    for i in batch
                ],
            )
            conn.execute(update(tags).where(tags.c.name == tag_name).values(modified_at=now))
        return now

    def lock_tag(self, tag_name: str) -> bool:
        with self._engine.begin() as conn:
            tag = self._tag_for_update(conn, tag_name)
            if tag["state"] == "locked":
                return False
            conn.execute(
                update(tags)
                .where(tags.c.name == tag_name)
                .values(state="locked", modified_at=self._clock())
            )
        return True

    def put_global_tag(self, name: str, change: GlobalTagUpdate) -> bool:
        """Create or replace a global tag's map; returns True if it was created."""
        with self._engine.begin() as conn:
            current = (
                conn.execute(
                    select(global_tags).where(global_tags.c.name == name).with_for_update()
                )
                .mappings()
                .first()
            )
            if current is not None and current["state"] == "locked":
                raise Conflict(f"global tag {name!r} is locked; it never changes again")
            wanted = sorted({e.tag for e in change.entries})
            found = set(conn.scalars(select(tags.c.name).where(tags.c.name.in_(wanted))))
            missing = [t for t in wanted if t not in found]
            if missing:
                raise NotFound(f"tags do not exist: {missing[:20]}", accepted="POST /v1/tags first")
            now = self._clock()
            if current is None:
                conn.execute(
                    insert(global_tags).values(
                        name=name,
                        state="open",
                        description=change.description or "",
                        created_at=now,
                        modified_at=now,
                    )
                )
            changed = self._write_map(conn, name, change.entries, now)
            values: dict[str, Any] = {}
            if change.description is not None and (
                current is None or current["description"] != change.description
            ):
                values["description"] = change.description
            if change.lock:
                values["state"] = "locked"
            if current is not None and (values or changed):
                values["modified_at"] = max(now, current["modified_at"] + 1)
                conn.execute(update(global_tags).where(global_tags.c.name == name).values(**values))
            elif current is None and change.lock:
                conn.execute(
                    update(global_tags).where(global_tags.c.name == name).values(state="locked")
                )
        return current is None

    def _write_map(
        self, conn: Connection, name: str, entries: tuple[MapEntry, ...], now: int
    ) -> bool:
        """Insert only what differs from the current map (tombstones for dropped records)."""
        gtm = global_tag_map.c
        rows = conn.execute(
            select(gtm.record, gtm.label, gtm.tag_name, gtm.insertion_time).where(
                gtm.global_tag == name
            )
        ).all()
        latest: dict[tuple[str, str], tuple[int, str | None]] = {}
        for record, label, tag_name, inserted in rows:
            if (record, label) not in latest or inserted > latest[(record, label)][0]:
                latest[(record, label)] = (inserted, tag_name)
        now = max([now] + [inserted + 1 for inserted, _ in latest.values()])
        current = {key: tag for key, (_, tag) in latest.items() if tag is not None}
        target: dict[tuple[str, str], str | None] = {(e.record, e.label): e.tag for e in entries}
        target.update({key: None for key in current if key not in target})
        new_rows = [
            {
                "global_tag": name,
                "record": record,
                "label": label,
                "tag_name": tag,
                "insertion_time": now,
            }
            for (record, label), tag in sorted(target.items(), key=lambda kv: kv[0])
            if current.get((record, label)) != tag
        ]
        if new_rows:
            conn.execute(insert(global_tag_map), new_rows)
        return bool(new_rows)

    @staticmethod
    def _tag_for_update(conn: Connection, name: str) -> Mapping[str, Any]:
        tag = (
            conn.execute(select(tags).where(tags.c.name == name).with_for_update())
            .mappings()
            .first()
        )
        if tag is None:
            raise NotFound(f"tag {name!r} does not exist", accepted="POST /v1/tags first")
        return dict(tag)
