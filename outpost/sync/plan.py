"""What a sync would do: the objects to add and the conflicts, from what the source says and
what the target holds. Pure: no I/O, no clock; `outpost.sync.source` reads the source over
the read API, `outpost.sync.target` reads and writes the target database.

The model is the conditions database's own: a tag is a sequence of IOV batches, each inserted
at one time; a global tag a sequence of map entries, each inserted at one time. Both are
append-only, so a target that is a copy of a source holds a prefix of what the source holds
(by insertion time), and the copy adds the rest. Anything else is a conflict, and a plan with
a conflict is applied not at all:

- a tag of the same name that is another tag (other time type, payload type, description or
  creation time), or whose batches differ (an IOV at the same since with another payload or
  insertion time: its history differs);
- a tag locked on the target that the source extended (or still holds open);
- a global tag edited on the target (an entry the source does not have, a later change, a
  lock the source does not have), whether or not it was edited at the source too.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from outpost.urls import format_time

__all__ = [
    "Batch",
    "GlobalTagPlan",
    "GlobalTagState",
    "Iov",
    "MapEntry",
    "Plan",
    "TagPlan",
    "TagState",
    "plan_sync",
]


@dataclass(frozen=True, order=True, slots=True)
class Iov:
    channel: int
    since: int
    payload: str


@dataclass(frozen=True, slots=True)
class Batch:
    """IOVs inserted into a tag at one time; `seq` and `by` say where and by whom at the
    source (None on the target, where they do not matter)."""

    inserted: int  # µs since the epoch
    iovs: tuple[Iov, ...]  # sorted
    seq: int | None = None
    by: str | None = None


@dataclass(frozen=True, slots=True)
class TagState:
    name: str
    time_type: str
    payload_type: str
    description: str
    state: str  # open | locked
    created_at: int
    modified_at: int
    batches: tuple[Batch, ...]  # by insertion time
    created: tuple[int | None, str | None] = (None, None)  # (seq, by) of its creation
    locked: tuple[int | None, str | None] = (None, None)  # (seq, by) of its lock

    @property
    def payloads(self) -> set[str]:
        return {iov.payload for batch in self.batches for iov in batch.iovs}


@dataclass(frozen=True, order=True, slots=True)
class MapEntry:
    inserted: int
    record: str
    label: str
    tag: str | None  # None: the record was dropped from the map


@dataclass(frozen=True, slots=True)
class GlobalTagState:
    name: str
    state: str
    description: str
    created_at: int
    modified_at: int
    entries: tuple[MapEntry, ...]  # sorted
    changes: Mapping[int, tuple[int, str | None]] = field(default_factory=dict)  # time → seq, by

    @property
    def tags(self) -> set[str]:
        """Every tag the map names or ever named (each must exist where the map is stored)."""
        return {e.tag for e in self.entries if e.tag is not None}


@dataclass(frozen=True, slots=True)
class TagPlan:
    """What to write of one tag: created (with the source's metadata), then its new batches
    in insertion order, then locked."""

    source: TagState
    create: bool
    batches: tuple[Batch, ...]
    lock: bool

    @property
    def iovs(self) -> int:
        return sum(len(b.iovs) for b in self.batches)


@dataclass(frozen=True, slots=True)
class GlobalTagPlan:
    source: GlobalTagState
    create: bool
    entries: tuple[MapEntry, ...]  # the entries the target lacks


@dataclass(frozen=True, slots=True)
class Plan:
    tags: tuple[TagPlan, ...]
    globaltags: tuple[GlobalTagPlan, ...]
    payloads: tuple[str, ...]  # hashes to copy, sorted
    conflicts: tuple[str, ...]
    skipped: tuple[str, ...] = ()  # global tags left out: their maps name tags not selected

    @property
    def empty(self) -> bool:
        return not (self.tags or self.globaltags or self.payloads)


def selected_tags(globaltags: Iterable[GlobalTagState], glob: str | None) -> list[str]:
    """The tags a sync copies: those the global tags name, matching `glob` if given, sorted."""
    names = {t for gt in globaltags for t in gt.tags}
    return sorted(t for t in names if glob is None or fnmatch.fnmatchcase(t, glob))


def plan_sync(
    source_globaltags: Sequence[GlobalTagState],
    source_tags: Mapping[str, TagState],
    target_globaltags: Mapping[str, GlobalTagState],
    target_tags: Mapping[str, TagState],
    target_payloads: Iterable[str],
    glob: str | None = None,
) -> Plan:
    """The plan that makes the target hold what the source holds of these global tags (and
    of their tags matching `glob`). `source_tags` may leave out a tag the target holds: it
    is taken as unchanged (what `--follow` does for the tags the feed did not mention)."""
    conflicts: list[str] = []
    tag_plans: list[TagPlan] = []
    for name in selected_tags(source_globaltags, glob):
        source = source_tags.get(name)
        if source is None:
            if name not in target_tags:
                raise ValueError(f"tag {name!r} was not read from the source")
            continue
        plan = _plan_tag(source, target_tags.get(name), conflicts)
        if plan is not None:
            tag_plans.append(plan)
    selected = set(selected_tags(source_globaltags, glob))
    gt_plans: list[GlobalTagPlan] = []
    skipped: list[str] = []
    for gt in sorted(source_globaltags, key=lambda g: g.name):
        if not gt.tags <= selected:
            skipped.append(gt.name)
            continue
        gt_plan = _plan_global_tag(gt, target_globaltags.get(gt.name), conflicts)
        if gt_plan is not None:
            gt_plans.append(gt_plan)
    held = set(target_payloads)
    wanted = {iov.payload for p in tag_plans for b in p.batches for iov in b.iovs}
    return Plan(
        tags=tuple(tag_plans),
        globaltags=tuple(gt_plans),
        payloads=tuple(sorted(wanted - held)),
        conflicts=tuple(conflicts),
        skipped=tuple(skipped),
    )


def _plan_tag(source: TagState, target: TagState | None, conflicts: list[str]) -> TagPlan | None:
    if target is None:
        return TagPlan(source, True, source.batches, source.state == "locked")
    fields = ("time_type", "payload_type", "description", "created_at")
    differing = [f for f in fields if getattr(source, f) != getattr(target, f)]
    if differing:
        conflicts.append(
            f"tag {source.name}: the target holds another tag of this name ({', '.join(differing)}"
            f" differ): rename one of them or leave it out of the sync (--tags)"
        )
        return None
    at_source = {b.inserted: b.iovs for b in source.batches}
    for batch in target.batches:
        if at_source.get(batch.inserted) != batch.iovs:
            conflicts.append(
                f"tag {source.name}: its history differs on the target: "
                f"{_first_unknown(batch, at_source.get(batch.inserted, ()))}, which the "
                "source does not hold; the target was written to directly"
            )
            return None
    held = {b.inserted for b in target.batches}
    new = tuple(b for b in source.batches if b.inserted not in held)
    if target.state == "locked":
        if new:
            conflicts.append(
                f"tag {source.name} is locked on the target, and the source added "
                f"{sum(len(b.iovs) for b in new)} IOVs to it ({len(new)} batches) since"
            )
        elif source.state != "locked":
            conflicts.append(f"tag {source.name} is locked on the target but open at the source")
        return None
    lock = source.state == "locked"
    if not new and not lock:
        return None
    return TagPlan(source, False, new, lock)


def _first_unknown(batch: Batch, known: Sequence[Iov]) -> str:
    at = format_time(batch.inserted)
    for iov in batch.iovs:
        if iov not in known:
            return (
                f"channel {iov.channel} since {iov.since} inserted at {at} names payload "
                f"{iov.payload}"
            )
    return f"the batch inserted at {at} lacks IOVs"


def _plan_global_tag(
    source: GlobalTagState, target: GlobalTagState | None, conflicts: list[str]
) -> GlobalTagPlan | None:
    if target is None:
        return GlobalTagPlan(source, True, source.entries)
    name = source.name
    if target.created_at != source.created_at:
        conflicts.append(
            f"global tag {name}: the target holds another global tag of this name (created at "
            f"{format_time(target.created_at)}, at the source {format_time(source.created_at)})"
        )
        return None
    at_source = set(source.entries)
    edited = [e for e in target.entries if e not in at_source]
    if edited:
        e = edited[0]
        conflicts.append(
            f"global tag {name} was edited on the target (record {e.record} label "
            f"{e.label!r} → {e.tag} at {format_time(e.inserted)}, which the source does not "
            "hold): edited on both sides, the copy would lose one of them"
        )
        return None
    if target.modified_at > source.modified_at or (
        target.state == "locked" and source.state != "locked"
    ):
        conflicts.append(
            f"global tag {name} was changed on the target after its last change at the source "
            f"({format_time(target.modified_at)} against {format_time(source.modified_at)})"
        )
        return None
    held = set(target.entries)
    new = tuple(e for e in source.entries if e not in held)
    if target.state == "locked" and new:
        conflicts.append(f"global tag {name} is locked on the target, and the source changed it")
        return None
    same = (target.state, target.description, target.modified_at) == (
        source.state,
        source.description,
        source.modified_at,
    )
    if not new and same:
        return None
    return GlobalTagPlan(source, False, new)
