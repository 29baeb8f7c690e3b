"""What the cache-tree dashboard shows (`/_outpost/ui/` and its JSON twin `/_outpost/dashboard`,
served by `proxy.ui`), and the little it has to remember for it (`proxy.core.history`):

- this proxy's own totals, sampled every `dashboard_sample_seconds` into a ring of about ten
  minutes (`Dashboard.run`, started in the app's lifespan);
- per child, a small ring of the figures its heartbeats carried (`Dashboard.heard`), the last
  of them also in the registry, so every worker process knows a child's last epoch and totals;
- the last flushes this proxy handled, with who acknowledged and who did not (`Dashboard.flushed`).

The rings and the flushes are this worker process's memory: with several workers, each shows
the heartbeats and the flushes it received itself. The totals it samples are the whole
proxy's, though: each worker publishes its own in the state directory (`SharedTotals`) and
reads back the sum, and its heartbeat sends that sum.

Nothing here shows a credential: every URL goes through `redact_url`, and what children send
is numbers (`parse_figures`) and names already checked by `is_plain_name`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from outpost.redact import redact_url
from proxy.core.history import (
    ChildFigures,
    Figures,
    FlushHistory,
    FlushRecord,
    Ring,
    Sample,
    slots_for,
    subtree,
)
from proxy.tree import state_database

if TYPE_CHECKING:
    from proxy.app import ProxyApp
    from proxy.tree import Child

__all__ = ["PAGE_SIZE", "Dashboard", "SharedTotals", "dashboard_of", "health"]

log = logging.getLogger("outpost.proxy.dashboard")

MAX_CHILDREN_TRACKED = 4096  # children whose heartbeat figures are kept (about 2 KB each)
CHILD_SAMPLES = 60  # per child: ten minutes of heartbeats at 10 s
FLUSHES = 20
PAGE_SIZE = 100  # children a page of the dashboard lists, each with its two plots
UNHEALTHY_LISTED = 50  # late or expiring children named above the table, the longest silent first
_SECOND = 1_000_000


def dashboard_of(url: str) -> str:
    """Where the proxy at `url` serves its dashboard: its scheme, host and path only (no
    credential, no query)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/") + "/_outpost/ui/", "", ""))


def health(age: float, heartbeat: float, expiry: float) -> str:
    """`ok`; `late`: no heartbeat for more than two heartbeat intervals; `expiring`: silent
    for more than half the time after which the child is dropped from the tree."""
    if age > max(2 * heartbeat, expiry / 2):
        return "expiring"
    return "late" if age > 2 * heartbeat else "ok"


class SharedTotals:
    """The whole proxy's answers and hits: with a state directory each worker process publishes
    its own there and reads back the sum over the workers that published lately (a worker
    that stopped drops out, which reads as a restart); without one, this process's own."""

    def __init__(self, path: Path | None, fresh_seconds: float) -> None:
        self.fresh_seconds = fresh_seconds
        self.worker = os.getpid()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = state_database(path, busy_ms=1000)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS totals "
                "(worker INTEGER PRIMARY KEY, requests INTEGER, hits INTEGER, at REAL)"
            )

    def sum(self, requests: int, hits: int, now: float) -> tuple[int, int]:
        if self._db is None:
            return requests, hits
        try:
            self._db.execute(
                "INSERT INTO totals VALUES (?, ?, ?, ?) ON CONFLICT(worker) DO UPDATE SET "
                "requests = excluded.requests, hits = excluded.hits, at = excluded.at",
                (self.worker, requests, hits, now),
            )
            cutoff = now - self.fresh_seconds
            self._db.execute("DELETE FROM totals WHERE at < ?", (cutoff,))
            row = self._db.execute("SELECT SUM(requests), SUM(hits) FROM totals").fetchone()
        except sqlite3.Error as exc:  # the state directory is busy or gone: this worker's own
            log.warning("cannot share this worker's totals: %s", exc)
            return requests, hits
        return int(row[0] or 0), int(row[1] or 0)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


class Dashboard:
    def __init__(self, app: ProxyApp) -> None:
        settings = app.settings
        self.app = app
        self.every = settings.dashboard_sample_seconds
        self.own = Ring(slots_for(self.every), cache_bytes=True)
        # Children's plots: one slot per heartbeat (the parent's own interval: the tree's).
        self.child_step = max(settings.heartbeat_seconds, self.every)
        self.child_slots = slots_for(self.child_step, most=CHILD_SAMPLES)
        self.children = ChildFigures(
            MAX_CHILDREN_TRACKED, self.child_slots, min_gap=int(self.child_step * _SECOND / 2)
        )
        self.flushes = FlushHistory(FLUSHES)
        state = settings.state_dir
        self.totals = SharedTotals(
            state / "totals.sqlite" if state else None,
            fresh_seconds=max(3 * self.every, 3 * settings.heartbeat_seconds, 30.0),
        )

    # --- what is remembered ----------------------------------------------------------------

    def figures(self) -> Figures:
        """This proxy's totals now (every worker's), its epoch, and its subtree's size: what
        its heartbeat sends."""
        requests, hits = self._totals()
        caches, unhealthy = self.subtree()
        return Figures(requests, hits, self.app.epoch.value, caches, unhealthy)

    def _totals(self) -> tuple[int, int]:
        return self.totals.sum(*self.app.tally.totals(), time.time())

    def subtree(self) -> tuple[int, int]:
        """The caches below this one (itself included), as its children's heartbeats reported
        their own subtrees, and how many of them are late or expiring."""
        settings, wall = self.app.settings, time.time()
        listed = self.app.registry.children(now=wall, expiry=settings.child_expiry_seconds)
        beat, expiry = settings.heartbeat_seconds, settings.child_expiry_seconds
        return subtree(
            (child.figures, health(wall - child.last_seen, beat, expiry) == "ok")
            for child in listed
        )

    def sample(self) -> Sample:
        """Take one sample into the ring (the sampler's step; tests call it directly)."""
        requests, hits = self._totals()  # not the subtree: the ring plots this cache alone
        at, epoch, cache_bytes = self.app.clock(), self.app.epoch.value, self.app.l1.bytes
        self.own.add(at, requests, hits, epoch, cache_bytes)
        return Sample(at, requests, hits, epoch, cache_bytes)

    async def run(self) -> None:
        """Sample every `dashboard_sample_seconds` until cancelled."""
        while True:
            try:
                self.sample()
            except Exception:  # a bug must not stop the sampler for good
                log.exception("sampling for the dashboard failed")
            await asyncio.sleep(self.every)

    def heard(self, name: str, figures: Figures) -> None:
        """A registered child's heartbeat carried `figures`."""
        now = self.app.clock()
        self.children.record(name, now, figures)
        expiry = int(self.app.settings.child_expiry_seconds * _SECOND)
        self.children.forget_before(now - expiry)

    def flushed(self, run: int, epoch: int, acked: int, failed: list[Any]) -> FlushRecord:
        return self.flushes.record(self.app.clock(), run, epoch, acked, failed)

    def close(self) -> None:
        self.totals.close()

    # --- what is shown ---------------------------------------------------------------------

    def document(self, page: int = 1) -> dict[str, Any]:
        """The dashboard's content: the JSON twin as it is, and what the page renders."""
        app, settings = self.app, self.app.settings
        now = app.clock()
        own = self.own.samples()
        redis = None
        if app.redis is not None:
            redis = {"url": app.redis.url, "up": app.store.l2_up}  # redacted by RedisStore
        feed = None
        if app.feed is not None:
            feed = {**app.feed.status(), "lag_seconds": app.feed.lag_seconds}
        return {
            "name": app.name,
            "url": redact_url(settings.url),
            "epoch": app.epoch.value,
            "parent": redact_url(settings.parent) if settings.parent else None,
            "parent_dashboard": dashboard_of(settings.parent) if settings.parent else None,
            "now": now / _SECOND,
            "workers": settings.workers,
            "cache": {
                "entries": len(app.l1),
                "bytes": app.l1.bytes,
                "max_bytes": settings.cache_size,
            },
            "hit_ratio": round(app.metrics.hit_ratio(), 4),
            "samples": [sample.document() for sample in own],
            "series": self.own.series(now, self.every, self.own.size).document(),
            **self._children(now, page),
            "flushes": [record.document() for record in self.flushes.records()],
            "upstreams": app.upstreams.health(),
            "redis": redis,
            "feed": feed,
        }

    def _children(self, now: int, page: int) -> dict[str, Any]:
        """The `children` and `subtree` of the document, from one read of the registry."""
        settings = self.app.settings
        wall = time.time()
        listed = self.app.registry.children(now=wall, expiry=settings.child_expiry_seconds)
        self.children.keep_only(c.name for c in listed)  # expired or gone: forgotten
        states: list[tuple[Child, float, str]] = []
        for child in listed:
            age = wall - child.last_seen
            states.append(
                (child, age, health(age, settings.heartbeat_seconds, settings.child_expiry_seconds))
            )
        counts = {"ok": 0, "late": 0, "expiring": 0}
        for _, _, state in states:
            counts[state] += 1
        unhealthy = sorted((s for s in states if s[2] != "ok"), key=lambda s: -s[1])
        pages = max(1, math.ceil(len(listed) / PAGE_SIZE))
        page = min(max(page, 1), pages)
        shown = states[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        caches, unhealthy_caches = subtree((c.figures, state == "ok") for c, _, state in states)
        kids = {
            "count": len(listed),
            "health": counts,
            "heartbeat_seconds": settings.heartbeat_seconds,
            "expiry_seconds": settings.child_expiry_seconds,
            "unhealthy": [
                {"name": child.name, "health": state, "age_seconds": round(age, 1)}
                for child, age, state in unhealthy[:UNHEALTHY_LISTED]
            ],
            "page": page,
            "pages": pages,
            "per_page": PAGE_SIZE,
            "rows": [self._row(child, age, state, now) for child, age, state in shown],
        }
        return {"subtree": {"caches": caches, "unhealthy": unhealthy_caches}, "children": kids}

    def _row(self, child: Child, age: float, state: str, now: int) -> dict[str, Any]:
        url = redact_url(child.url)
        ring = self.children.ring(child.name)
        figures = child.figures
        plotted = None
        if ring is not None:
            plotted = ring.series(now, self.child_step, self.child_slots).document()
        return {
            "name": child.name,
            "url": url,
            "dashboard": dashboard_of(child.url),
            "last_seen": child.last_seen,
            "age_seconds": round(age, 1),
            "health": state,
            "epoch": None if figures is None else figures.epoch,
            "requests": None if figures is None else figures.requests,
            "hits": None if figures is None else figures.hits,
            "caches": 1 if figures is None else figures.caches,
            "unhealthy": 0 if figures is None else figures.unhealthy,
            "series": plotted,
        }
