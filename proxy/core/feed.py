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

import orjson

from outpost.errors import OutpostError
from outpost.feed import Entry, FeedUnreadable, Page, page_answer, parse_page
from outpost.urls import Payload, Query, parse

__all__ = [
    "Entry",
    "FeedRing",
    "FeedUnreadable",
    "Page",
    "Plan",
    "changes_globaltag",
    "mapped_tags",
    "page_answer",
    "parse_page",
    "plan",
]


@dataclass(frozen=True)
class Plan:
    """What applying some entries asks of the cache, before they are announced."""

    fetch: tuple[str, ...]  # payload URLs to hold (new, immutable)
    drop: tuple[str, ...]  # stored answers that the entries change


def plan(
    entries: Iterable[Entry], tags: Sequence[str] = (), mapped: frozenset[str] | None = None
) -> Plan:
    """Payloads to fetch: those an IOV batch of a subscribed tag names, and, when every tag is
    subscribed, every payload as it is uploaded. A tag is subscribed when it matches one of
    the `tags` globs or is in `mapped` (the tags the subscribed global tags map); with neither,
    every tag is. Answers to drop: every other URL an entry makes new (a tag's IOVs, its
    metadata, a global tag's map). A URL that is not the canonical spelling of an Outpost read
    (`outpost.urls`) is neither: an upstream cannot make this proxy fetch or forget anything
    else."""
    everything = not tags and mapped is None
    fetch: dict[str, None] = {}
    drop: dict[str, None] = {}
    for entry in entries:
        wanted = everything or (
            entry.tag is not None
            and (
                (mapped is not None and entry.tag in mapped)
                or any(fnmatch.fnmatchcase(entry.tag, glob) for glob in tags)
            )
        )
        for url in entry.urls:
            query = _read_of(url)
            if isinstance(query, Payload):
                if wanted and entry.kind in ("iovs", "payload"):
                    fetch[url] = None
            elif query is not None:
                drop[url] = None
    return Plan(tuple(fetch), tuple(drop))


def changes_globaltag(entries: Iterable[Entry], names: Sequence[str]) -> bool:
    """Whether one of `entries` changes the map of a global tag in `names`."""
    return any(
        entry.kind == "globaltag"
        and entry.document is not None
        and entry.document.get("globaltag") in names
        for entry in entries
    )


def mapped_tags(body: bytes) -> frozenset[str]:
    """The tags a global tag's map answer (`/v1/globaltags/NAME`) names; `FeedUnreadable` if
    the answer is not one (it comes from an upstream)."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FeedUnreadable(f"a global tag's map that is not JSON: {exc}") from None
    rows = document.get("map") if isinstance(document, dict) else None
    if not isinstance(rows, list) or not all(
        isinstance(row, dict) and isinstance(row.get("tag"), str) for row in rows
    ):
        raise FeedUnreadable("a global tag's map without a 'map' list of records and tags")
    return frozenset(row["tag"] for row in rows)


def _read_of(url: str) -> Query | None:
    """The read `url` names if it is that read's canonical URL, else None."""
    path, _, query_string = url.partition("?")
    try:
        query = parse(path, query_string)
    except OutpostError:
        return None
    return query if query.url() == url else None


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
        """Follow from `position` on, holding nothing older (a start, or a resync with an
        upstream whose feed is behind what this ring held: its head is the truth now)."""
        self._entries.clear()
        self._bytes = 0
        self.base = position
        self.upstream_head = position

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
