"""The dashboard's memory (`/_outpost/ui/`): bounded rings of counter samples, the figures a
child's heartbeat carries, and the last flushes. Pure: times are microseconds given by the
caller, nothing here reads a clock or does I/O.

A sample holds totals (answers and hits since the process started, as `hit_ratio` counts
them), never rates: rates come from two successive samples, so a missed sample widens one
interval instead of inventing a figure, and a restart (totals going down) leaves that one
interval without a figure.

Everything is bounded: a ring drops its oldest sample, `ChildFigures` tracks at most
`max_children` children (the least recently heard go first), a `FlushHistory` keeps its last
`size` flushes with at most `max_laggards` laggards each. What a child sends is refused unless
it is a plain non-negative integer no larger than `MAX_FIGURE` (`parse_figures`).
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from outpost.redact import redact_text, redact_url
from outpost.urls import is_plain_name

__all__ = [
    "MAX_FIGURE",
    "WINDOW_SECONDS",
    "BadFigures",
    "ChildFigures",
    "Figures",
    "FlushHistory",
    "FlushRecord",
    "Laggard",
    "Ring",
    "Sample",
    "Series",
    "parse_figures",
    "series",
    "slots_for",
    "subtree",
]

MAX_FIGURE = 2**53 - 1  # exact in a JSON number (a double) and in a signed 64-bit integer
WINDOW_SECONDS = 600  # how far back the plots reach
MAX_SLOTS = 600
_SECOND = 1_000_000


def slots_for(step_seconds: float, window: float = WINDOW_SECONDS, most: int = MAX_SLOTS) -> int:
    """How many samples `step_seconds` apart cover `window` (at least 2, at most `most`)."""
    return max(2, min(most, math.ceil(window / step_seconds)))


class BadFigures(ValueError):
    """A child's figures that are not what a heartbeat may carry; the message says why."""


@dataclass(frozen=True, slots=True)
class Figures:
    """A cache's own totals as its heartbeat reports them, and the size of its subtree."""

    requests: int  # cacheable answers (hit, collapsed, miss, stale, revalidated)
    hits: int  # of them, hit or collapsed
    epoch: int
    caches: int = 1  # the caches of its subtree, itself included
    unhealthy: int = 0  # of them, those late or expiring at their parents

    def document(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "hits": self.hits,
            "epoch": self.epoch,
            "caches": self.caches,
            "unhealthy": self.unhealthy,
        }


def subtree(children: Iterable[tuple[Figures | None, bool]]) -> tuple[int, int]:
    """The caches of a subtree and how many of them are unhealthy, from this cache's children:
    each one's last figures (None: it reported none, so it counts alone) and whether its
    parent, this cache, finds it healthy. Bounded by MAX_FIGURE whatever the children say."""
    caches, unhealthy = 1, 0
    for figures, healthy in children:
        caches += 1 if figures is None else figures.caches
        unhealthy += (0 if healthy else 1) + (0 if figures is None else figures.unhealthy)
    caches = min(caches, MAX_FIGURE)
    return caches, min(unhealthy, caches - 1)


def parse_figures(document: object) -> Figures:
    """The figures of a heartbeat's `figures` object: integers in 0..MAX_FIGURE, hits no more
    than requests, and (optional, from children that report their subtree) `caches` at least 1
    and `unhealthy` fewer than `caches`; anything else (a string, a float, a boolean, markup)
    is BadFigures."""
    if not isinstance(document, Mapping):
        raise BadFigures("figures must be an object of integers")
    values: dict[str, int] = {}
    for key in ("requests", "hits", "epoch"):
        value = document.get(key)
        if type(value) is not int or not 0 <= value <= MAX_FIGURE:
            raise BadFigures(f"figures.{key} must be an integer from 0 to {MAX_FIGURE}")
        values[key] = value
    if values["hits"] > values["requests"]:
        raise BadFigures("figures.hits cannot exceed figures.requests")
    for key, default in (("caches", 1), ("unhealthy", 0)):
        value = document.get(key, default)
        if type(value) is not int or not 0 <= value <= MAX_FIGURE:
            raise BadFigures(f"figures.{key} must be an integer from 0 to {MAX_FIGURE}")
        values[key] = value
    if values["caches"] < 1 or values["unhealthy"] >= values["caches"]:
        raise BadFigures("figures.caches counts the cache itself; unhealthy ones are fewer")
    return Figures(**values)


@dataclass(frozen=True, slots=True)
class Sample:
    at: int  # microseconds
    requests: int
    hits: int
    epoch: int
    cache_bytes: int | None = None  # this proxy's own samples only

    def document(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "at": self.at / _SECOND,
            "requests": self.requests,
            "hits": self.hits,
            "epoch": self.epoch,
        }
        if self.cache_bytes is not None:
            found["cache_bytes"] = self.cache_bytes
        return found


class Ring:
    """The last `size` samples, in one flat array of 64-bit integers (a child's ring of 60
    samples is about 2 KB). A sample less than `min_gap` microseconds after the newest one
    replaces it, so heartbeats arriving faster than expected (several worker processes each
    sending their own) do not shorten the time the ring covers."""

    def __init__(self, size: int, *, cache_bytes: bool = False, min_gap: int = 0) -> None:
        if size < 2:
            raise ValueError("a ring needs room for two samples")
        self.size = size
        self.min_gap = min_gap
        self._stride = 5 if cache_bytes else 4
        self._values = array("q")

    def __len__(self) -> int:
        return len(self._values) // self._stride

    def add(self, at: int, requests: int, hits: int, epoch: int, cache_bytes: int = 0) -> None:
        row = (at, requests, hits, epoch, cache_bytes)[: self._stride]
        values, stride = self._values, self._stride
        if values and at - values[-stride] < self.min_gap:
            values[-stride:] = array("q", row)
            return
        values.extend(row)
        if len(values) > self.size * stride:
            del values[:stride]

    def samples(self) -> list[Sample]:
        values, stride = self._values, self._stride
        rows = [values[i : i + stride] for i in range(0, len(values), stride)]
        if stride == 5:
            return [Sample(r[0], r[1], r[2], r[3], r[4]) for r in rows]
        return [Sample(r[0], r[1], r[2], r[3]) for r in rows]

    def latest(self) -> Sample | None:
        if not self._values:
            return None
        return self.samples()[-1]

    def last_at(self) -> int | None:
        return self._values[-self._stride] if self._values else None

    def series(self, now: int, step_seconds: float, slots: int) -> Series:
        """The plots of this ring (`series`), read straight from its array."""
        return _series(self._values, self._stride, now, step_seconds, slots)


@dataclass(frozen=True, slots=True)
class Series:
    """Per slot of a plot, oldest first: the hit ratio and the answers a second over the
    interval that ended in that slot; None where no interval ended (a missed sample, a
    restart, nobody asking)."""

    step_seconds: float
    hit_ratio: list[float | None]
    request_rate: list[float | None]

    def document(self) -> dict[str, Any]:
        return {
            "step_seconds": self.step_seconds,
            "hit_ratio": self.hit_ratio,
            "request_rate": self.request_rate,
        }


def series(samples: Sequence[Sample], now: int, step_seconds: float, slots: int) -> Series:
    """`samples` laid on `slots` slots of `step_seconds` ending at `now`: each interval between
    two successive samples gives the rate and the hit ratio of its answers, in the slot of its
    end. An interval whose totals went down (a restart) or whose time did not advance gives
    nothing; one with no answers gives a rate of 0 and no hit ratio."""
    flat = [(s.at, s.requests, s.hits) for s in samples]
    return _series([v for row in flat for v in row], 3, now, step_seconds, slots)


def _series(
    values: Sequence[int], stride: int, now: int, step_seconds: float, slots: int
) -> Series:
    step = max(1, int(step_seconds * _SECOND))
    ratios: list[float | None] = [None] * slots
    rates: list[float | None] = [None] * slots
    ats, requests, hits = values[0::stride], values[1::stride], values[2::stride]
    last = slots - 1
    for at, before, asked, asked_before, hit, hit_before in zip(
        ats[1:], ats, requests[1:], requests, hits[1:], hits, strict=False
    ):
        elapsed, answers, hit = at - before, asked - asked_before, hit - hit_before
        if elapsed <= 0 or answers < 0 or hit < 0:
            continue
        index = last - (now - at) // step if now > at else last
        if index < 0:
            continue
        # Rounded (both are positive) to what a plot or a reader needs: round() is 10x slower.
        rates[index] = int(answers * 1_000_000_000 / elapsed + 0.5) / 1000
        if answers:  # totals from two different sources may give more hits than answers
            ratios[index] = (
                int((hit if hit < answers else answers) * 10_000 / answers + 0.5) / 10_000
            )
    return Series(step_seconds, ratios, rates)


class ChildFigures:
    """A small ring of figures per child, from its successive heartbeats.

    At most `max_children` children are tracked: the one heard from least recently is
    forgotten first, so children that stopped beating (expired, renamed) leave by
    themselves; `forget_before` drops those silent since a time, `keep_only` those the
    registry no longer lists."""

    def __init__(self, max_children: int, samples: int, min_gap: int = 0) -> None:
        self.max_children = max_children
        self.samples = samples
        self.min_gap = min_gap
        self._rings: OrderedDict[str, Ring] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rings)

    def __contains__(self, name: object) -> bool:
        return name in self._rings

    def record(self, name: str, at: int, figures: Figures) -> None:
        ring = self._rings.pop(name, None)
        if ring is None:
            ring = Ring(self.samples, min_gap=self.min_gap)
        ring.add(at, figures.requests, figures.hits, figures.epoch)
        self._rings[name] = ring  # the most recently heard, last
        while len(self._rings) > self.max_children:
            self._rings.popitem(last=False)

    def ring(self, name: str) -> Ring | None:
        return self._rings.get(name)

    def forget_before(self, cutoff: int) -> None:
        """Forget the children last heard from before `cutoff` (the oldest are first)."""
        while self._rings:
            name, ring = next(iter(self._rings.items()))
            last = ring.last_at()
            if last is not None and last >= cutoff:
                return
            del self._rings[name]

    def keep_only(self, names: Iterable[str]) -> None:
        wanted = set(names)
        for name in [n for n in self._rings if n not in wanted]:
            del self._rings[name]


@dataclass(frozen=True, slots=True)
class Laggard:
    """A cache that did not acknowledge a flush: its URL and error redacted and cut."""

    name: str
    url: str
    error: str

    def document(self) -> dict[str, str]:
        return {"name": self.name, "url": self.url, "error": self.error}


@dataclass(frozen=True, slots=True)
class FlushRecord:
    at: int  # microseconds
    run: int
    epoch: int
    acked: int
    failed: int  # caches that did not acknowledge (all of them; `laggards` names the first)
    laggards: tuple[Laggard, ...]

    def document(self) -> dict[str, Any]:
        return {
            "at": self.at / _SECOND,
            "run": self.run,
            "epoch": self.epoch,
            "acked": self.acked,
            "failed": self.failed,
            "laggards": [laggard.document() for laggard in self.laggards],
        }


class FlushHistory:
    """The last `size` flushes this proxy handled, newest first."""

    def __init__(self, size: int = 20, max_laggards: int = 50) -> None:
        self.max_laggards = max_laggards
        self._records: deque[FlushRecord] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._records)

    def record(
        self, at: int, run: int, epoch: int, acked: int, failed: Sequence[object]
    ) -> FlushRecord:
        """Remember a flush; `failed` as `FanOutResult.failed` holds it (entries from deeper
        caches came through a child's answer, so each field is checked and cut again)."""
        laggards = tuple(_laggard(f) for f in failed[: self.max_laggards])
        record = FlushRecord(at, run, epoch, acked, len(failed), laggards)
        self._records.appendleft(record)
        return record

    def records(self) -> list[FlushRecord]:
        return list(self._records)


def _laggard(failure: object) -> Laggard:
    fields = failure if isinstance(failure, Mapping) else {}
    name, url, error = fields.get("name"), fields.get("url"), fields.get("error")
    return Laggard(
        name=name if isinstance(name, str) and is_plain_name(name) else "(unnamed)",
        url=redact_url(url)[:300] if isinstance(url, str) else "",
        error=redact_text(error)[:300] if isinstance(error, str) else "",
    )
