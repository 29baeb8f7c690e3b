"""One sync, and following a source: the plan (`outpost.sync.plan`) between the reads
(`outpost.sync.source`) and the writes (`outpost.sync.target`).

One run reads the feed's head first, then the global tags, then every tag they name (or, when
following, only those the feed mentioned and those the target lacks), plans, and writes the
plan with the head as where the target now stands: the state read is at least as new as the
head, and a change after the head that was copied already is found held and not copied again.

Following (`follow`) resumes from the position the target stands at (`sync_positions`): each
page of the source's feed that mentions a selected tag or global tag is one run (with the
page's last position), a page that mentions none only moves the position. A source that does
not answer is tried again with a growing pause (up to `max_pause`), from the same position,
so a restart of either side or a broken link loses nothing and applies nothing twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from outpost.feed import Page
from outpost.sync.errors import FeedPositionLost, SourceUnreachable, SourceUnusable, SyncConflicts
from outpost.sync.plan import Plan, plan_sync, selected_tags
from outpost.sync.source import PayloadMeta, Source
from outpost.sync.target import Target
from outpost.urls import format_time

__all__ = ["Outcome", "Selection", "follow", "sync_once"]

log = logging.getLogger("outpost.sync")


@dataclass(frozen=True)
class Selection:
    globaltags: tuple[str, ...]
    tags: str | None = None  # a glob: only these tags of the global tags


@dataclass
class Outcome:
    plan: Plan
    position: int  # the source feed position the target stands at afterwards
    written: bool
    payload_bytes: int = 0
    seconds: float = 0.0
    requests: int = 0
    metas: dict[str, PayloadMeta] = field(default_factory=dict)


def sync_once(
    source: Source,
    target: Target,
    selection: Selection,
    *,
    dry_run: bool = False,
    refresh: dict[str, int] | None = None,
    position: int | None = None,
) -> Outcome:
    """Copy what is new; `SyncConflicts` (nothing written) if the target contradicts the
    source. `refresh`: re-read only these tags (and those the target lacks); `position`: the
    feed position the read state is at least as new as (default: the head, read first)."""
    started, requests = time.perf_counter(), source.requests
    head = source.feed_head() if position is None else position
    gts = [source.globaltag(name) for name in selection.globaltags]
    names = selected_tags(gts, selection.tags)
    target_tags, target_gts = target.state(names, selection.globaltags)
    wanted = [n for n in names if refresh is None or n in refresh or n not in target_tags]
    source_tags = {name: source.tag(name) for name in wanted}
    _check_fresh(source, refresh or {}, source_tags, {g.name: g.modified_at for g in gts})
    referenced = {p for tag in source_tags.values() for p in tag.payloads}
    plan = plan_sync(
        gts, source_tags, target_gts, target_tags, target.payloads_held(referenced), selection.tags
    )
    outcome = Outcome(plan, head, written=False)
    if plan.conflicts and not dry_run:
        raise SyncConflicts(plan.conflicts)
    outcome.metas = _metas(source, plan.payloads)
    outcome.payload_bytes = sum(m.size for m in outcome.metas.values())
    if not dry_run and not plan.empty:

        def fetch(digest: str) -> tuple[bytes, str, int, str | None]:
            meta = outcome.metas[digest]
            return source.payload(meta), meta.object_type, meta.created_at, meta.by

        target.apply(plan, source.url, head, fetch)
        outcome.written = True
    outcome.seconds = time.perf_counter() - started
    outcome.requests = source.requests - requests
    return outcome


def _check_fresh(
    source: Source, seen: dict[str, int], tags: dict[str, Any], globaltags: dict[str, int]
) -> None:
    """What was read must be at least as new as the feed entries that asked for the run: a
    cache that answers with an older state (a proxy that does not follow the feed) would
    otherwise let the position move past a change that was never copied."""
    for name, at in seen.items():
        known = tags[name].modified_at if name in tags else globaltags.get(name)
        if known is not None and known < at:
            raise SourceUnusable(
                f"{source.url} answered {name} as it was before the change the feed announced "
                f"at {format_time(at)}: a cache in between does not follow the feed (set "
                "subscribe on the proxy, or sync from the origin); tried again later"
            )


def _metas(source: Source, digests: tuple[str, ...]) -> dict[str, PayloadMeta]:
    if not digests:
        return {}
    with ThreadPoolExecutor(4, thread_name_prefix="outpost-sync-info") as pool:
        return dict(zip(digests, pool.map(source.payload_meta, digests), strict=True))


def follow(
    source: Source,
    target: Target,
    selection: Selection,
    *,
    report: Callable[[Outcome], None],
    wait: int = 25,
    max_pause: float = 30.0,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Keep the target current from the source's change feed until `stop` is set. A source
    that does not answer, or answers what is refused (a corrupt payload, a lying feed), is
    tried again after a pause, nothing written meanwhile; a conflict (`SyncConflicts`) ends
    it: it needs an operator."""
    stop = stop or threading.Event()
    position = target.position(source.url)
    pause = 0.0
    while not stop.is_set():
        try:
            if position is None:  # never synced from here, or the source lost our position
                outcome = sync_once(source, target, selection)
                if not outcome.written:
                    target.set_position(source.url, outcome.position)
                report(outcome)
                position = outcome.position
            page = source.changes(position, wait=wait)
            if page.entries:
                mentioned = _mentioned(page, selection)
                last = page.entries[-1].seq
                if mentioned is None:
                    target.set_position(source.url, last)
                else:
                    outcome = sync_once(source, target, selection, refresh=mentioned, position=last)
                    if not outcome.written:
                        target.set_position(source.url, last)
                    report(outcome)
                position = last
            pause = 0.0
        except FeedPositionLost as exc:
            log.warning("%s; reading the whole state again", exc.detail)
            position = None
        except SyncConflicts:
            raise
        except (SourceUnreachable, SourceUnusable) as exc:
            pause = min(max_pause, max(0.5, pause * 2))
            log.warning("%s; trying again in %.1f s from position %s", exc.detail, pause, position)
            if sleep is time.sleep:
                stop.wait(pause)
            else:
                sleep(pause)


def _mentioned(page: Page, selection: Selection) -> dict[str, int] | None:
    """The tags and global tags a feed page says changed, each with the time of its newest
    change, if it mentions anything the sync copies; None if nothing."""
    seen: dict[str, int] = {}
    relevant = False
    for entry in page.entries:
        name: Any = None
        if entry.kind in ("tag", "iovs", "lock") and entry.tag is not None:
            name, relevant = entry.tag, True
        elif entry.kind == "globaltag":
            name = (entry.document or {}).get("globaltag")
            relevant = relevant or name in selection.globaltags
        if isinstance(name, str):
            seen[name] = max(seen.get(name, 0), entry.time or 0)
    return seen if relevant else None
