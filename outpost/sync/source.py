"""Reading a source over the public read API (`outpost.urls`), bounded and checked.

Every request is a GET of a canonical URL, so a sync through a proxy shares its cache entries
with every other reader (payloads by hash are immutable; a tag's IOVs are read pinned to a
snapshot, which never changes either). Every answer is bounded in size (`max_json_bytes`, a
payload's announced size) and time (`timeout`), and checked before anything is built from it:
names are plain names, hashes are hashes, payload bytes hash to their name, and a tag's
history must give exactly the IOVs the source answers for the tag. What fails a check is a
`SourceUnusable`, never a partial object.

What is read, per object:

- a global tag: `/v1/globaltags/G` (state, times, map); every map entry ever written, with its
  insertion time, up to the global tag's last change (`/v1/query/global_tag_map?…`); its
  history (`/v1/globaltags/G/history`: who, feed positions);
- a tag: `/v1/tags/T`; its history (`/v1/tags/T/history`: creation, IOV batches with their
  insertion times, lock); its IOVs at its last change (`/v1/tags/T/iovs?snapshot=…`, the check);
- a payload: `/v1/payloads/H/info` (size, type, creation, uploader), `/v1/payloads/H`;
- the change feed: `/v1/changes?after=N&limit=L&wait=S`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import httpx
import orjson

import outpost
from outpost.feed import FeedUnreadable, Page, parse_page
from outpost.sync.errors import (
    FeedPositionLost,
    SourceMissing,
    SourceUnreachable,
    SourceUnusable,
)
from outpost.sync.plan import Batch, GlobalTagState, Iov, MapEntry, TagState
from outpost.urls import (
    FEED_PATH,
    INT64_MAX,
    FeedQuery,
    Filter,
    GlobalTagMap,
    History,
    Order,
    Payload,
    PayloadInfo,
    TableQuery,
    TagInfo,
    TagIovs,
    is_plain_name,
    parse_time,
)

__all__ = ["PayloadMeta", "Source"]

MIB: Final = 1024 * 1024
MAP_PAGE: Final = 10_000  # map entries a table query answers at most (the origin's default cap)
HISTORY_PAGES_MAX: Final = 100_000  # 100 M changes of one subject: more is no Outpost origin


class PayloadMeta:
    """What the source says of a payload before its bytes are read."""

    __slots__ = ("by", "created_at", "hash", "object_type", "size")

    def __init__(self, digest: str, size: int, object_type: str, created_at: int, by: str | None):
        self.hash, self.size, self.object_type = digest, size, object_type
        self.created_at, self.by = created_at, by


class Source:
    """A source origin (or a proxy in front of one) at `url`."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        max_json_bytes: int = 64 * MIB,
        max_payload_bytes: int = 1024 * MIB,
        attempts: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")) or len(url) > 512:
            raise SourceUnreachable(
                f"--from {url[:100]!r} is not an http(s) URL of at most 512 characters",
                accepted="http://host:port",
            )
        self.url = url.rstrip("/")
        self.max_json_bytes = max_json_bytes
        self.max_payload_bytes = max_payload_bytes
        self.attempts = attempts
        self.timeout = timeout
        self._sleep = sleep
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"user-agent": f"outpost-sync/{outpost.__version__}"},
            trust_env=False,
            follow_redirects=False,
        )
        self.requests = 0
        self.bytes = 0

    def close(self) -> None:
        self._http.close()

    # --- HTTP ------------------------------------------------------------------------------

    def get(self, path: str, limit: int, *, timeout: float | None = None) -> bytes:
        """The body of `GET path` (a 200), at most `limit` bytes; connection failures, timeouts
        and 5xx are tried `attempts` times, then `SourceUnreachable`; 404 is `SourceMissing`."""
        for attempt in range(self.attempts):
            try:
                return self._get_once(path, limit, timeout)
            except SourceUnreachable:
                if attempt + 1 == self.attempts:
                    raise
                self._sleep(min(0.2 * 2**attempt, 2.0))
        raise AssertionError("unreachable")

    def _get_once(self, path: str, limit: int, timeout: float | None) -> bytes:
        url = self.url + path
        limits = self._http.timeout if timeout is None else httpx.Timeout(timeout, connect=5.0)
        try:
            with self._http.stream("GET", url, timeout=limits) as response:
                status = response.status_code
                if status != 200:
                    detail = _error_detail(response)
                    if status == 404:
                        raise SourceMissing(f"{url}: {detail}")
                    if status >= 500:
                        raise SourceUnreachable(f"{url} answered {status}: {detail}")
                    if status == 409 and path.startswith(FEED_PATH):
                        raise FeedPositionLost(f"{url}: {detail}")
                    raise SourceUnusable(f"{url} answered {status}: {detail}")
                declared = response.headers.get("content-length")
                coded = response.headers.get("content-encoding") is not None
                announced = int(declared) if declared and declared.isdigit() else 0
                if announced > limit and not coded:
                    raise _too_large(url, limit)
                chunks, total = [], 0
                for chunk in response.iter_bytes():
                    total += len(chunk)
                    if total > limit:
                        raise _too_large(url, limit)
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise SourceUnreachable(f"{url}: {type(exc).__name__}: {exc}"[:500]) from None
        self.requests += 1
        self.bytes += total
        return b"".join(chunks)

    def get_json(self, path: str) -> Any:
        body = self.get(path, self.max_json_bytes)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise SourceUnusable(f"{self.url}{path}: the answer is not JSON ({exc})") from None

    # --- objects ---------------------------------------------------------------------------

    def feed_head(self) -> int:
        return self.changes(0, wait=0, limit=1).head

    def changes(self, after: int, *, wait: int, limit: int = 1000) -> Page:
        """A page of the change feed after `after`, long-polled up to `wait` seconds. 409 (a
        position beyond the source's head) is `SourceUnusable` with `beyond_head` set."""
        path = FeedQuery(after=after, limit=limit, wait=wait).url()
        body = self.get(path, self.max_json_bytes, timeout=wait + self.timeout)
        try:
            page = parse_page(body, after)
        except FeedUnreadable as exc:
            raise SourceUnusable(f"{self.url}{path}: change feed answer refused: {exc}") from None
        if page.entries and page.entries[-1].seq > page.head:
            raise SourceUnusable(
                f"{self.url}{path}: the feed announces position {page.entries[-1].seq} "
                f"beyond its own head {page.head}"
            )
        return page

    def globaltag(self, name: str) -> GlobalTagState:
        where = f"{self.url}{GlobalTagMap(name).url()}"
        document = _object(self.get_json(GlobalTagMap(name).url()), where)
        state = _state(document.get("state"), where)
        modified_at = _time(document.get("modified_at"), where, "modified_at")
        current = {
            (_name(m.get("record"), where), _label(m.get("label"), where)): _name(
                m.get("tag"), where
            )
            for m in (_object(m, where) for m in _list(document.get("map"), where, "map"))
        }
        entries = self._map_entries(name, modified_at)
        rebuilt: dict[tuple[str, str], str | None] = {}
        for entry in entries:
            rebuilt[(entry.record, entry.label)] = entry.tag
        if {k: v for k, v in rebuilt.items() if v is not None} != current:
            raise SourceUnusable(
                f"{self.url}: the map entries of global tag {name} do not give its map: the "
                "source changed while it was read, or it is not an Outpost origin; run again"
            )
        return GlobalTagState(
            name=name,
            state=state,
            description=_text(document.get("description"), where, "description"),
            created_at=_time(document.get("created_at"), where, "created_at"),
            modified_at=modified_at,
            entries=tuple(sorted(entries)),
            changes=self._globaltag_changes(name, modified_at),
        )

    def _map_entries(self, name: str, until: int) -> list[MapEntry]:
        """Every map entry of `name` inserted up to `until`, paged by insertion time."""
        found: list[MapEntry] = []
        after = -1
        while True:
            query = TableQuery(
                "global_tag_map",
                select=("record", "label", "tag_name", "insertion_time"),
                filters=(
                    Filter("global_tag", "eq", name),
                    Filter("insertion_time", "gt", str(after)),
                    Filter("insertion_time", "le", str(until)),
                ),
                order=(Order("insertion_time"), Order("record"), Order("label")),
                limit=MAP_PAGE,
            )
            where = f"{self.url}{query.url()}"
            document = _object(self.get_json(query.url()), where)
            rows = _list(document.get("rows"), where, "rows")
            page: list[MapEntry] = []
            for row in rows:
                if not isinstance(row, list) or len(row) != 4:
                    raise SourceUnusable(f"{where}: a row is not [record, label, tag, time]")
                record, label, tag, inserted = row
                page.append(
                    MapEntry(
                        _int(inserted, where, "insertion_time"),
                        _name(record, where),
                        _label(label, where),
                        None if tag is None else _name(tag, where),
                    )
                )
            if document.get("truncated") is not True:
                return found + page
            last = page[-1].inserted if page else after
            complete = [e for e in page if e.inserted < last]
            if not complete:
                raise SourceUnusable(
                    f"{where}: one change of global tag {name} has more than {MAP_PAGE} entries"
                )
            found += complete
            after = complete[-1].inserted

    def _globaltag_changes(self, name: str, until: int) -> dict[int, tuple[int, str | None]]:
        changes: dict[int, tuple[int, str | None]] = {}
        for entry, where in self._history("globaltags", name):
            at = _iso(entry.get("time"), where, "time")
            if at <= until:
                changes[at] = (_int(entry.get("seq"), where, "seq"), _by(entry.get("by"), where))
        return changes

    def _history(self, of: str, name: str) -> Iterator[tuple[dict[str, Any], str]]:
        after = 0
        for _ in range(HISTORY_PAGES_MAX):
            query = History("tags" if of == "tags" else "globaltags", name, after)
            where = f"{self.url}{query.url()}"
            document = _object(self.get_json(query.url()), where)
            for entry in _list(document.get("history"), where, "history"):
                yield _object(entry, where), where
            following = document.get("next")
            if following is None:
                return
            after = _int(following, where, "next")
            if after <= query.after:
                raise SourceUnusable(f"{where}: 'next' {after} does not move forward")
        raise SourceUnusable(f"{self.url}: the history of {name} has no end")

    def tag(self, name: str) -> TagState:
        """The tag with its whole history, checked against its IOVs as the source answers them
        at the tag's last change (`modified_at`): later changes are left for the next sync."""
        where = f"{self.url}{TagInfo(name).url()}"
        info = _object(self.get_json(TagInfo(name).url()), where)
        modified_at = _time(info.get("modified_at"), where, "modified_at")
        batches: list[Batch] = []
        created: tuple[int | None, str | None] = (None, None)
        locked: tuple[int | None, str | None] = (None, None)
        for entry, at in self._history("tags", name):
            kind, seq = entry.get("kind"), _int(entry.get("seq"), at, "seq")
            when, by = _iso(entry.get("time"), at, "time"), _by(entry.get("by"), at)
            if when > modified_at:
                continue  # after the tag's state that was read: the next sync copies it
            if kind == "tag":
                created = (seq, by)
            elif kind == "lock":
                locked = (seq, by)
            elif kind == "iovs":
                inserted = _iso(entry.get("insertion_time"), at, "insertion_time")
                iovs = tuple(sorted(_iov(row, at) for row in _list(entry.get("iovs"), at, "iovs")))
                batches.append(Batch(inserted, iovs, seq, by))
            else:
                raise SourceUnusable(f"{at}: an entry of kind {str(kind)[:40]!r}")
        batches.sort(key=lambda b: b.inserted)
        if len({b.inserted for b in batches}) != len(batches):
            raise SourceUnusable(f"{self.url}: tag {name}'s history has two batches at one time")
        tag = TagState(
            name=name,
            time_type=_choice(info.get("time_type"), ("run", "run_lumi", "timestamp"), where),
            payload_type=_name(info.get("payload_type"), where),
            description=_text(info.get("description"), where, "description"),
            state=_state(info.get("state"), where),
            created_at=_time(info.get("created_at"), where, "created_at"),
            modified_at=modified_at,
            batches=tuple(batches),
            created=created,
            locked=locked,
        )
        self._check_iovs(tag)
        return tag

    def _check_iovs(self, tag: TagState) -> None:
        """The history must give the IOVs the source answers: else it is incomplete (a
        database older than the change feed) or lying, and nothing is built from it."""
        newest: dict[tuple[int, int], tuple[int, str]] = {}
        for batch in tag.batches:
            for iov in batch.iovs:
                newest[(iov.channel, iov.since)] = (batch.inserted, iov.payload)
        query = TagIovs(tag.name, snapshot=tag.modified_at)
        where = f"{self.url}{query.url()}"
        document = _object(self.get_json(query.url()), where)
        answered: dict[tuple[int, int], tuple[int, str]] = {}
        for row in _list(document.get("iovs"), where, "iovs"):
            item = _object(row, where)
            key = (
                _int(item.get("channel"), where, "channel"),
                _int(item.get("since"), where, "since"),
            )
            answered[key] = (
                _iso(item.get("insertion_time"), where, "insertion_time"),
                _hash(item.get("payload"), where),
            )
        if answered != newest:
            raise SourceUnusable(
                f"{where}: the history of tag {tag.name} does not give its IOVs (a database "
                "written before the change feed existed, or not an Outpost origin): it cannot "
                "be copied with its insertion times"
            )

    def payload_meta(self, digest: str) -> PayloadMeta:
        query = PayloadInfo(digest)
        where = f"{self.url}{query.url()}"
        document = _object(self.get_json(query.url()), where)
        if document.get("hash") != digest:
            raise SourceUnusable(f"{where}: the answer is about another payload")
        size = _int(document.get("size"), where, "size")
        if size > self.max_payload_bytes:
            raise SourceUnusable(
                f"{where}: payload of {size} bytes, over the limit of {self.max_payload_bytes}",
                accepted=f"<= {self.max_payload_bytes} bytes (--max-payload-mib)",
            )
        return PayloadMeta(
            digest,
            size,
            _name(document.get("object_type"), where),
            _iso(document.get("created_at"), where, "created_at"),
            _by(document.get("by"), where),
        )

    def payload(self, meta: PayloadMeta) -> bytes:
        """The payload's bytes, exactly `meta.size` of them, hashing to `meta.hash`."""
        path = Payload(meta.hash).url()
        data = self.get(path, meta.size)
        actual = hashlib.sha256(data).hexdigest()
        if actual != meta.hash or len(data) != meta.size:
            raise SourceUnusable(
                f"{self.url}{path}: {len(data)} bytes hashing to {actual}, not the "
                f"{meta.size} bytes of {meta.hash}: refused, nothing was written"
            )
        return data


# --- checks of what the source answered ----------------------------------------------------


def _too_large(url: str, limit: int) -> SourceUnusable:
    return SourceUnusable(f"{url}: the answer is over {limit} bytes", accepted=f"<= {limit} bytes")


def _error_detail(response: httpx.Response) -> str:
    """What an error answer says (its `detail`), read bounded."""
    body = b""
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > 4096:
            break
    try:
        detail = orjson.loads(body).get("detail")
    except (orjson.JSONDecodeError, AttributeError):
        detail = None
    return str(detail)[:300] if isinstance(detail, str) else "no detail"


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SourceUnusable(f"{where}: expected a JSON object")
    return value


def _list(value: Any, where: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise SourceUnusable(f"{where}: {what!r} is not a list")
    return value


def _int(value: Any, where: str, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= INT64_MAX:
        raise SourceUnusable(f"{where}: {what!r} is not an integer in 0..2^63-1")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not is_plain_name(value):
        raise SourceUnusable(f"{where}: {str(value)[:100]!r} is not a plain name")
    return value


def _label(value: Any, where: str) -> str:
    return "" if value == "" else _name(value, where)


def _text(value: Any, where: str, what: str, limit: int = 100_000) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise SourceUnusable(f"{where}: {what!r} is not a string of at most {limit} characters")
    return value


def _by(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where, "by", 128)


def _state(value: Any, where: str) -> str:
    return _choice(value, ("open", "locked"), where)


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise SourceUnusable(f"{where}: {str(value)[:40]!r} is not one of {allowed}")
    return str(value)


def _iso(value: Any, where: str, what: str) -> int:
    if not isinstance(value, str) or len(value) > 40:
        raise SourceUnusable(f"{where}: {what!r} is not a time")
    try:
        return parse_time(value, what)
    except Exception:
        raise SourceUnusable(f"{where}: {what}={value!r} is not a time") from None


def _time(value: Any, where: str, what: str) -> int:
    return _iso(value, where, what)


def _hash(value: Any, where: str) -> str:
    if (
        not isinstance(value, str)
        or len(value) != 64
        or any(c not in "0123456789abcdef" for c in value)
    ):
        raise SourceUnusable(f"{where}: {str(value)[:100]!r} is not a SHA-256 hash")
    return value


def _iov(row: Any, where: str) -> Iov:
    item = _object(row, where)
    return Iov(
        _int(item.get("channel"), where, "channel"),
        _int(item.get("since"), where, "since"),
        _hash(item.get("payload"), where),
    )
