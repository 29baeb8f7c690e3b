"""Following the change feed from a farm node: what to ask, and which new objects an answer
brings. Pure: the drivers (`sync`, `aio`) do the GETs, through the same failover walk as every
other read, so when the node proxy's feed is unreachable the next proxy or server answers from
the same position (positions are the origin's in every tier).

    for new in client.follow(tags=["EcalLaser*"]):
        new.tag, new.since, new.data        # verified bytes, read as an ordinary GET (a hit)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from outpost.client.answers import Unusable
from outpost.feed import FeedUnreadable, Page, parse_page
from outpost.urls import FeedQuery

__all__ = ["NewIov", "NewObject", "decode_page", "feed_query", "new_iovs"]

LONG_POLL_MARGIN = 2.0  # seconds between a long poll's wait and the client's read timeout


@dataclass(frozen=True, slots=True)
class NewIov:
    """An IOV a followed tag gained: where it is in the feed, and which payload it names."""

    seq: int
    tag: str
    channel: int
    since: int
    payload: str
    inserted: str  # its insertion time, ISO 8601 (the read API's `insertion_time`)


@dataclass(frozen=True, slots=True)
class NewObject:
    """A `NewIov` with its payload's bytes, verified against their SHA-256."""

    iov: NewIov
    data: bytes

    @property
    def tag(self) -> str:
        return self.iov.tag

    @property
    def since(self) -> int:
        return self.iov.since

    @property
    def payload(self) -> str:
        return self.iov.payload


def feed_query(after: int, wait: float, read_timeout: float, limit: int = 1000) -> FeedQuery:
    """The poll from `after`, waiting at most `wait` seconds and less than the read timeout."""
    seconds = int(min(wait, read_timeout - LONG_POLL_MARGIN))
    return FeedQuery(after=after, limit=limit, wait=max(0, seconds))


def decode_page(body: bytes, after: int) -> Page:
    """A feed answer, or `Unusable` (the walk asks the next endpoint)."""
    try:
        return parse_page(body, after)
    except FeedUnreadable as exc:
        raise Unusable("invalid", f"change feed answer: {exc}") from None


def new_iovs(page: Page, tags: Sequence[str] = ()) -> list[NewIov]:
    """The IOVs of the page's IOV batches, in feed order, of the tags matching `tags` (globs;
    every tag without). Rows the client could not use are skipped, never guessed at."""
    found: list[NewIov] = []
    for entry in page.entries:
        document = entry.document or {}
        tag, inserted, rows = entry.tag, document.get("insertion_time"), document.get("iovs")
        if entry.kind != "iovs" or tag is None or not isinstance(rows, list):
            continue
        if tags and not any(fnmatch.fnmatchcase(tag, glob) for glob in tags):
            continue
        for row in rows:
            if not isinstance(row, dict):
                continue
            channel, since, payload = row.get("channel"), row.get("since"), row.get("payload")
            if _is_int(channel) and _is_int(since) and _is_hash(payload):
                found.append(
                    NewIov(entry.seq, tag, channel, since, payload, str(inserted or ""))  # type: ignore[arg-type]
                )
    return found


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hash(value: object) -> bool:
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )
