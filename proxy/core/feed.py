"""The change feed as a proxy relays it: a bounded ring of the entries it has applied, the rule
that says which requests it answers from the ring, and what an entry asks of the cache.

A proxy that subscribes follows its upstream's `/v1/changes`, and for each page of entries
first fetches the payloads they announce and drops the stored answers they change, then adds
them to its ring (`FeedRing.add`): so a child that reads an entry here finds its objects here.
Sequence numbers are the origin's, unchanged, in every tier.

The ring holds the positions after `base` (where this proxy started following, or resynced)
up to `head`, at most `max_entries` entries and `max_bytes` of them; older ones are dropped.
A reader at a position this ring covers is answered from it (waiting, if it asked to, for the
next entry); a reader before it (a slow subscriber, or one that starts from 0) or beyond
everything this proxy knows is passed upstream, where the feed's whole history is
(`FeedRing.answers`). No entry is ever lost or reordered on the way: a reader resumes exactly
after the last position it received.
"""

from __future__ import annotations

import fnmatch
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from outpost.errors import BadRequest
from outpost.urls import parse_time

__all__ = ["Entry", "FeedRing", "FeedUnreadable", "Plan", "parse_page", "plan"]

PAYLOAD_PREFIX = "/v1/payloads/"
MAX_URLS = 100_000  # of one entry: more is not an answer of an Outpost origin


class FeedUnreadable(ValueError):
    """An upstream's feed answer is not a feed page (malformed, out of order, oversized)."""


@dataclass(frozen=True)
class Entry:
    seq: int
    raw: bytes  # the entry's JSON, as relayed
    kind: str
    tag: str | None
    urls: tuple[str, ...]
    time: int | None = None  # when it was committed at the origin, µs since the epoch


@dataclass(frozen=True)
class Page:
    head: int
    entries: list[Entry]


def parse_page(body: bytes, after: int) -> Page:
    """An upstream's answer to `/v1/changes?after=AFTER`, checked: a JSON object with an integer
    `head` and `changes` whose `seq` are integers that increase after `after`, each entry with a
    `kind` string and a list of URL strings."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FeedUnreadable(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise FeedUnreadable("not a JSON object")
    head, changes = _position(document.get("head")), document.get("changes")
    if head is None or not isinstance(changes, list):
        raise FeedUnreadable("no integer 'head' or no 'changes' list")
    entries: list[Entry] = []
    last = after
    for item in changes:
        if not isinstance(item, dict):
            raise FeedUnreadable("an entry is not an object")
        seq, kind, urls = _position(item.get("seq")), item.get("kind"), item.get("urls", [])
        if seq is None or seq <= last:
            raise FeedUnreadable(f"entry position {item.get('seq')!r} does not follow {last}")
        if not isinstance(kind, str) or not isinstance(urls, list) or len(urls) > MAX_URLS:
            raise FeedUnreadable(f"entry {seq}: no 'kind' string or no 'urls' list")
        if not all(isinstance(u, str) and u.startswith("/") for u in urls):
            raise FeedUnreadable(f"entry {seq}: a URL that is not a path")
        tag, stamp = item.get("tag"), item.get("time")
        entries.append(
            Entry(
                seq,
                orjson.dumps(item),
                kind,
                tag if isinstance(tag, str) else None,
                tuple(urls),
                _time(stamp),
            )
        )
        last = seq
    if entries and head < last:
        raise FeedUnreadable(f"head {head} is before its own entry {last}")
    return Page(head, entries)


def _time(stamp: Any) -> int | None:
    if not isinstance(stamp, str):
        return None
    try:
        return parse_time(stamp, "time")
    except BadRequest:
        return None


def _position(value: Any) -> int | None:
    """A feed position: a JSON integer, not negative."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


@dataclass(frozen=True)
class Plan:
    """What applying some entries asks of the cache, before they are announced."""

    fetch: tuple[str, ...]  # payload URLs to hold (new, immutable)
    drop: tuple[str, ...]  # stored answers that the entries change


def plan(entries: Iterable[Entry], tags: Sequence[str] = ()) -> Plan:
    """Payloads to fetch: those an IOV batch of a subscribed tag names (every tag without
    `tags` globs), and, without globs, every payload as it is uploaded. Answers to drop: every
    other URL an entry makes new (a tag's IOVs, its metadata, a global tag's map)."""
    fetch: dict[str, None] = {}
    drop: dict[str, None] = {}
    for entry in entries:
        wanted = (
            not tags
            if entry.tag is None
            else not tags or any(fnmatch.fnmatchcase(entry.tag, glob) for glob in tags)
        )
        for url in entry.urls:
            if url.startswith(PAYLOAD_PREFIX):
                if wanted and entry.kind in ("iovs", "payload"):
                    fetch[url] = None
            else:
                drop[url] = None
    return Plan(tuple(fetch), tuple(drop))


@dataclass
class FeedRing:
    max_entries: int
    max_bytes: int
    base: int | None = None  # no position yet: every reader goes upstream
    upstream_head: int = 0  # the newest position the upstream has told of
    _entries: deque[Entry] = field(default_factory=deque)
    _bytes: int = 0

    @property
    def head(self) -> int | None:
        """The newest position applied here (`base` if no entry is held)."""
        if self._entries:
            return self._entries[-1].seq
        return self.base

    def start(self, position: int) -> None:
        """Follow from `position` on, holding nothing older (a start or a resync)."""
        self._entries.clear()
        self._bytes = 0
        self.base = position
        self.upstream_head = max(self.upstream_head, position)

    def add(self, entries: Sequence[Entry]) -> None:
        """Entries applied (their objects held), in order, after `head`."""
        for entry in entries:
            assert self.head is not None and entry.seq > self.head, "entries out of order"
            self._entries.append(entry)
            self._bytes += len(entry.raw)
        while self._entries and (
            len(self._entries) > self.max_entries or self._bytes > self.max_bytes
        ):
            dropped = self._entries.popleft()
            self._bytes -= len(dropped.raw)
            self.base = dropped.seq

    def answers(self, after: int) -> bool:
        """Whether a reader at `after` is answered here: the ring holds every entry after it,
        and it is not ahead of what the upstream has told of (such a reader, come from a
        tier further along, waits upstream). The others go upstream."""
        if self.base is None or after < self.base:
            return False
        return after <= max(self.upstream_head, self.head or 0)

    def after(self, position: int, limit: int) -> list[Entry]:
        """Up to `limit` entries after `position` (which `answers`), oldest first."""
        newer: list[Entry] = []
        for entry in reversed(self._entries):  # a reader is usually near the newest end
            if entry.seq <= position:
                break
            newer.append(entry)
        newer.reverse()
        return newer[:limit]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes


def page_answer(after: int, head: int, entries: Sequence[Entry]) -> bytes:
    """The JSON a reader gets, as the origin writes it (`origin.feed.feed_answer`)."""
    following = entries[-1].seq if entries else after
    body = b",".join(entry.raw for entry in entries)
    return b'{"after":%d,"head":%d,"next":%d,"changes":[%s]}' % (after, head, following, body)
