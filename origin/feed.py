"""The change feed: every committed write, in commit order, with the URLs it makes new.

Each writing transaction takes the next position from `feed_head` (one row, updated by every
write, so a second writer waits for the first to commit: positions are handed out in commit
order and a reader never sees position N+1 before N) and records one entry per change in
`changes`. `GET /v1/changes?after=SEQ[&limit=N][&wait=S]` answers the entries after SEQ, in
order; with `wait`, a reader that is up to date is held until something is written or `wait`
seconds pass (a long poll).

Why a long poll and not Server-Sent Events: a long poll is an ordinary GET whose URL says where
the reader stands, so resuming after a reconnect or a failover is the same request again, no
server keeps per-reader state, every answer is bounded (`limit`), and a proxy answers the many
readers below it from one upstream poll. SSE would hold one stream per reader, with its own
resume header and buffering rules, through every tier.

Entries are JSON objects with `seq`, `time` (the write's clock, as the read API writes times:
ISO 8601 UTC with microseconds, usable as a `snapshot`), `kind` and the URLs the change makes
new (`urls`, canonical):

| kind | fields |
| --- | --- |
| `payload` | `payload` (hash), `size`, `object_type` |
| `tag` | `tag` |
| `iovs` | `tag`, `insertion_time`, `iovs`: `[{"channel", "since", "payload"}]` |
| `lock` | `tag` |
| `globaltag` | `globaltag`, `state` |
| `run` | `run`, `globaltag`, `lumi`, `digest` (a run record was written; `subject` is the run) |
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from outpost import draining
from outpost.feed import page_answer
from outpost.urls import (
    GlobalTagList,
    GlobalTagMap,
    History,
    Payload,
    RunQuery,
    TagInfo,
    TagIovs,
    format_time,
)

__all__ = [
    "KINDS",
    "Change",
    "Provenance",
    "FeedWatcher",
    "feed_answer",
    "globaltag_change",
    "iovs_change",
    "lock_change",
    "payload_change",
    "run_change",
    "tag_change",
]

KINDS = ("payload", "tag", "iovs", "lock", "globaltag", "run")


@dataclass(frozen=True)
class Change:
    """One entry before it has its position: what `WriteSession` records."""

    kind: str
    subject: str  # the payload hash, tag, global tag or run (in decimal) it is about
    time: int
    fields: dict[str, Any]
    urls: tuple[str, ...]
    by: str | None = None  # a copied change: who made it at the source (else the session's)
    source: Provenance | None = None  # a copied change: where it was copied from

    def entry(self, who: str | None = None) -> bytes:
        """The stored JSON of the entry, without `seq` (given when it is read); `by` is who
        wrote it (the token's name), when known; `source` where a copy came from."""
        document = {"time": format_time(self.time), "kind": self.kind, **self.fields}
        if who is not None:
            document["by"] = who
        if self.source is not None:
            document["source"] = {"url": self.source.url, "seq": self.source.seq}
        document["urls"] = self.urls
        return orjson.dumps(document)


@dataclass(frozen=True)
class Provenance:
    """Where a copied change came from (`outpost sync`): the source's URL and the position
    in the source's change feed of the change (or of the state it was read at)."""

    url: str
    seq: int


def payload_change(digest: str, size: int, object_type: str, time: int) -> Change:
    fields = {"payload": digest, "size": size, "object_type": object_type}
    return Change("payload", digest, time, fields, (Payload(digest).url(),))


def tag_change(tag: str, time: int) -> Change:
    return Change("tag", tag, time, {"tag": tag}, (TagInfo(tag).url(), History("tags", tag).url()))


def iovs_change(tag: str, time: int, iovs: Sequence[tuple[int, int, str]]) -> Change:
    """An IOV batch: (channel, since, payload hash) rows, all inserted at `time`."""
    rows = [{"channel": c, "since": s, "payload": p} for c, s, p in iovs]
    payload_urls = sorted({Payload(p).url() for _, _, p in iovs})
    urls = (TagIovs(tag).url(), TagInfo(tag).url(), History("tags", tag).url(), *payload_urls)
    fields = {"tag": tag, "insertion_time": format_time(time), "iovs": rows}
    return Change("iovs", tag, time, fields, urls)


def lock_change(tag: str, time: int) -> Change:
    urls = (TagInfo(tag).url(), TagIovs(tag).url(), History("tags", tag).url())
    return Change("lock", tag, time, {"tag": tag}, urls)


def globaltag_change(name: str, state: str, time: int) -> Change:
    urls = (GlobalTagMap(name).url(), GlobalTagList().url(), History("globaltags", name).url())
    return Change("globaltag", name, time, {"globaltag": name, "state": state}, urls)


def run_change(run: int, globaltag: str, lumi: int, digest: str, time: int) -> Change:
    """A run record written: it makes its own URL new (the list of runs is short-lived)."""
    fields = {"run": run, "globaltag": globaltag, "lumi": lumi, "digest": digest}
    return Change("run", str(run), time, fields, (RunQuery(run).url(),))


def feed_answer(after: int, head: int, rows: Sequence[tuple[int, str]]) -> bytes:
    """The JSON answer (`outpost.feed.page_answer`) of stored entries, each given its `seq`."""
    entries = [(seq, b'{"seq":%d,%s' % (seq, entry.encode()[1:])) for seq, entry in rows]
    return page_answer(after, head, entries)


class FeedWatcher:
    """Tells long-polling readers when the feed's head moves past where they stand.

    A write committed by this process says so at once (`advanced`, from any thread); writes
    of other processes (more origin workers, `outpost db load`) are seen by reading the head
    every `poll_seconds`, and only while someone is waiting."""

    def __init__(self, read_head: Callable[[], int], poll_seconds: float) -> None:
        self._read_head = read_head  # blocking: run in a worker thread
        self._poll = poll_seconds
        self.head = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._moved: asyncio.Future[None] | None = None
        self._waiting = 0
        self._poller: asyncio.Task[None] | None = None

    def advanced(self, seq: int) -> None:
        """A write at position `seq` committed; thread-safe."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._moved_to, seq)

    async def wait_beyond(self, seq: int, timeout: float) -> None:
        """Return once the head is past `seq`, or after `timeout` seconds."""
        self._loop = asyncio.get_running_loop()
        self._waiting += 1
        if self._poller is None or self._poller.done():
            self._poller = self._loop.create_task(self._follow_head())
        deadline = self._loop.time() + timeout
        try:
            while self.head <= seq and not draining.is_draining():
                remaining = deadline - self._loop.time()
                if remaining <= 0:
                    break
                await draining.wait_until(self._future(), remaining)
        finally:
            self._waiting -= 1

    def _future(self) -> asyncio.Future[None]:
        if self._moved is None or self._moved.done():
            assert self._loop is not None
            self._moved = self._loop.create_future()
        return self._moved

    def _moved_to(self, seq: int) -> None:
        if seq > self.head:
            self.head = seq
            if self._moved is not None and not self._moved.done():
                self._moved.set_result(None)

    async def _follow_head(self) -> None:
        while self._waiting > 0:
            try:
                head = await asyncio.to_thread(self._read_head)
            except Exception:  # the database is away: the readers' own query reports it
                head = self.head
            self._moved_to(head)
            await asyncio.sleep(self._poll)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
