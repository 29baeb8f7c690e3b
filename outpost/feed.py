"""Reading a change-feed page (`GET /v1/changes`), as a proxy and a farm-node client both do.

An answer comes from an upstream, so it is checked before anything is done with it: a JSON
object with an integer `head` and a `changes` list whose entries have integer positions that
increase after the one asked for, a `kind` string and a list of URL paths. Anything else is
`FeedUnreadable`, and the reader asks elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from outpost.errors import BadRequest
from outpost.urls import parse_time

__all__ = ["MAX_URLS", "Entry", "FeedUnreadable", "Page", "page_answer", "parse_page"]

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
    document: dict[str, Any] | None = None  # the entry as parsed


@dataclass(frozen=True)
class Page:
    head: int
    entries: list[Entry]


def page_answer(after: int, head: int, entries: list[tuple[int, bytes]]) -> bytes:
    """The answer to `/v1/changes?after=AFTER`, in every tier: `after` as asked, the feed's
    `head`, `next` (where to ask from next time) and the entries, (seq, JSON) spliced in as
    they are, never re-encoded."""
    following = entries[-1][0] if entries else after
    body = b",".join(raw for _, raw in entries)
    return b'{"after":%d,"head":%d,"next":%d,"changes":[%s]}' % (after, head, following, body)


def parse_page(body: bytes, after: int) -> Page:
    """An answer to `/v1/changes?after=AFTER`, checked (see the module's docstring)."""
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
        tag = item.get("tag")
        entries.append(
            Entry(
                seq,
                orjson.dumps(item),
                kind,
                tag if isinstance(tag, str) else None,
                tuple(urls),
                _time(item.get("time")),
                item,
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
