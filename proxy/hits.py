"""The hit path: keys memoised from the raw request target, and the answers that need no engine.

A hit costs the gate (client network and, in forward mode, destination: memoised), a key
lookup (memoised from the raw request target), one dictionary read (two for a varied answer:
its marker, then the variant the request selects), the core's `fresh_hit` rule and two `send`s
(or, below ASGI in `proxy.protocol`, one socket write). Everything else goes to the engine.

`proxy.protocol` depends on this module alone: it asks `answer_hit` for a plain hit, `watch`es
the fetch of a plain miss (one in flight, or one its head starts), and once that fetch settles
asks `answer_waited` for the answer, or hands the request to the ASGI app with the outcome
under `COLLAPSED`.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import unquote

from starlette.types import Scope

from outpost.accesslog import ACCESS_NOTE, AccessLog
from outpost.errors import BadRequest
from outpost.urls import FEED_PATH
from proxy.core.directives import CacheControl, parse_cache_control
from proxy.core.entry import SECOND, Entry
from proxy.core.headers import Headers
from proxy.core.keys import primary_key, variant_key
from proxy.core.memo import remember
from proxy.core.policy import fresh_hit, plain_request
from proxy.core.serving import entry_headers, hit_head, response_head
from proxy.epoch import EpochState
from proxy.flights import Flights, Outcome, Request, describe
from proxy.gate import Gate
from proxy.metrics import Tally
from proxy.storage.base import Stored, VaryMarker
from proxy.storage.memory import MemoryStore

__all__ = ["COLLAPSED", "INTERIM", "RESERVED", "SPECIAL", "HitPath", "Watched"]

KEY_MEMO_LIMIT = 100_000
# Scope key under which `proxy.protocol` hands over the outcome of the fetch a request waited
# for below ASGI, when it cannot answer the request itself.
COLLAPSED = "outpost.collapsed"
# Scope key naming the flight `proxy.protocol` reserved for the request to lead.
RESERVED = "outpost.reserved"
# Scope key of a callable(status, headers) that writes an interim (1xx) answer to the client
# before its final one, set by `proxy.protocol` (ASGI itself has no interim-response event).
INTERIM = "outpost.interim"
# Request fields that can change what a stored entry answers.
SPECIAL = frozenset(
    {
        b"cache-control",
        b"pragma",
        b"if-none-match",
        b"if-modified-since",
        b"authorization",
        b"cookie",
        b"range",
        b"if-range",
    }
)


NO_DIRECTIVES = CacheControl()


class Watched(NamedTuple):
    """The fetch a request waits for below ASGI; `leads` when its head started it, and then
    `note` is what the fetch told the access log (`outpost.accesslog.ACCESS_NOTE`)."""

    result: asyncio.Future[Outcome]
    leads: bool
    note: dict[str, object] | None = None


class HitPath:
    def __init__(
        self,
        *,
        name: str,
        memory: MemoryStore,
        epoch: EpochState,
        gate: Gate,
        flights: Flights,
        tally: Tally,
        clock: Callable[[], int],
    ) -> None:
        self.name, self.memory, self.epoch, self.gate = name, memory, epoch, gate
        self.flights, self.tally, self.clock = flights, tally, clock
        self.access_log: AccessLog | None = None  # where the protocol records what it answers
        # starts the shared fetch of a plain miss (`Engine.lead`); None when a shared tier
        # must be asked first, which only the engine's own `resolve` does
        self.lead: Callable[[Request], asyncio.Future[Outcome] | None] | None = None
        self._keys: dict[bytes, str | BadRequest] = {}
        self._plain: dict[bytes, bool] = {}  # Cache-Control value → `plain_request`

    @property
    def timeout(self) -> float:
        """How long a request waits for a fetch in flight."""
        return self.flights.timeout

    def key(self, scope: Scope) -> str | BadRequest:
        """The primary key (also the target a shared fetch sends upstream), or why the request
        target is refused; memoised by the request target as received (path and query)."""
        raw = scope.get("raw_path") or scope["path"].encode()
        query_string = scope["query_string"]
        target = raw + b"?" + query_string if query_string else raw
        key = self._keys.get(target)
        if key is None:
            try:
                key = primary_key(raw.decode("latin-1"), query_string.decode("latin-1"))
            except BadRequest as refused:
                key = refused
            remember(self._keys, target, key, KEY_MEMO_LIMIT)
        return key

    def plain(self, special: list[tuple[bytes, bytes]]) -> bool:
        """Whether the request's special fields are only Cache-Control values that leave a
        fresh entry servable (`proxy.core.policy.plain_request`)."""
        for name, value in special:
            if name != b"cache-control":
                return False
            plain = self._plain.get(value)
            if plain is None:
                plain = plain_request(parse_cache_control(value, request=True))
                remember(self._plain, value, plain, KEY_MEMO_LIMIT)
            if not plain:
                return False
        return True

    def fresh_entry(
        self, key: str, headers: Headers, special: list[tuple[bytes, bytes]], now: int
    ) -> Entry | None:
        """The memory entry that answers a plain GET or HEAD as it is, or None when the
        request needs the engine (a miss, stale, revalidation, directives). A varied answer
        (the origin's JSON, `Vary: Accept-Encoding`) is looked up by the variant the request's
        `headers` select, as the engine does."""
        if special and not self.plain(special):
            return None
        _, entry = self._in_memory(key, headers)
        if type(entry) is Entry and entry.serving is not None and not entry.targeted:
            return entry if fresh_hit(entry, now, self.epoch.value) else None
        return None  # (a targeted entry's answer depends on the client: `proxy.responses`)

    def answer_hit(
        self,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        client: tuple[str, int] | None,
        head: bool,
    ) -> tuple[bytes, bytes] | None:
        """Below ASGI: the response head and body of a plain hit on the origin-form `target`,
        counted; None when the request must go through the ASGI app (admin routes, a client
        or forward mode the gate must check, anything but a hit)."""
        started = time.perf_counter()
        key = self._protocol_key(target, client)
        if key is None:
            return None
        now = self.clock()
        special = [(k, v) for k, v in headers if k in SPECIAL]
        entry = self.fresh_entry(key, headers, special, now)
        if entry is None:
            return None
        body = b"" if head else entry.body
        answer = hit_head(entry, now, self.epoch.value), body
        self.tally.count_fast_hit(time.perf_counter() - started, len(body))
        return answer

    def watch(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        client: tuple[str, int] | None,
    ) -> Watched | str | None:
        """Below ASGI, for a GET or HEAD of `target` with nothing of it in memory: the fetch
        to wait for (`Watched`): the one already in flight, joined, or one this request's
        head starts (`lead`, when there is no shared tier to ask first); else the key of the
        flight reserved for the request to lead from its ASGI cycle (a str: the app must
        `join` or `release` it); None when the request is not one to wait for.

        At a run start hundreds of a node's clients ask for the run's new resolve URL within
        a millisecond, and at a cold start hundreds of new URLs arrive at once: they wait for
        the fetches here, instead of each going through a request cycle, and a fetch starts
        as its first request's head is read, not once that request's cycle has its turn
        after the heads of all the others (`benchmarks/cold_stampede.py`).

        Only a request without directives or validators waits here, and only when nothing is
        stored for its key: a stale entry may be served while it is revalidated."""
        primary = self._protocol_key(target, client)
        if primary is None or any(k in SPECIAL for k, _ in headers) or _is_feed(primary):
            return None  # (a feed poll is this proxy's own answer, never a fetch to share)
        key, stored = self._in_memory(primary, headers)
        if stored is not None:
            return None
        flight = self.flights.watch(key)
        if flight is not None:
            return Watched(flight, leads=False)
        if self.lead is not None and key == primary:  # no variant: nothing stored at all
            request = Request(method.decode(), primary, headers, NO_DIRECTIVES)
            note: dict[str, object] = {}  # the fetch task's context carries it, as in `logged`
            context = contextvars.copy_context()
            context.run(ACCESS_NOTE.set, note)
            started = context.run(self.lead, request)
            if started is not None:
                return Watched(started, leads=True, note=note)
        return key if self.flights.reserve(key) else None

    def release(self, reserved: str) -> None:
        """A flight `watch` reserved that no request will lead after all."""
        self.flights.release(reserved)

    def settled(self, watched: Watched) -> Outcome:
        """The outcome a request that `watch`ed gets: the fetch's own for the request that
        led it, the collapsed one for the others (or a 504 after `timeout`)."""
        result = watched.result
        if watched.leads and result.done() and not result.cancelled():
            return result.result()
        return self.flights.settled(result)

    def answer_waited(
        self,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        head: bool,
        outcome: Outcome,
        started: float,
    ) -> tuple[bytes, bytes] | None:
        """Below ASGI: the response head and body for a request that waited, since `started`
        (`time.perf_counter()`), for the fetch that ended with `outcome`, as the engine answers
        a request that led or joined a fetch; None when the ASGI app must answer it from
        `outcome` (under the scope key COLLAPSED): the fetch failed, stored nothing, is
        relaying its body, or stored another variant than this request's."""
        fetched = outcome.entry
        if fetched is None or outcome.error is not None or outcome.warning is not None:
            return None
        key = self._keys.get(target)
        if not isinstance(key, str):
            return None
        now = self.clock()
        entry = self.fresh_entry(key, headers, [], now)
        if entry is None or entry.body is not fetched.body:
            return None
        body = b"" if head else entry.body
        answered = self._waited_head(outcome, entry, now), body
        if outcome.collapsed:
            self.tally.count_fast_collapsed(time.perf_counter() - started, len(body))
        else:  # the request whose head started the fetch
            label, _ = describe(self.name, outcome, False, now)
            self.tally.count_fast_led(label, time.perf_counter() - started, len(body))
        return answered

    def _waited_head(self, outcome: Outcome, entry: Entry, now: int) -> bytes:
        """The response head for the requests that waited for `outcome` (the collapsed one,
        or the leader's own), made once per second of age and epoch: a run start's waiters
        for one URL all get the same bytes."""
        epoch = self.epoch.value
        moment = (entry.age(now) // SECOND, epoch)
        memo: tuple[tuple[int, int], Entry, bytes] | None = outcome.__dict__.get("_head")
        if memo is not None and memo[0] == moment and memo[1] is entry:
            return memo[2]
        _, status = describe(self.name, outcome, False, now)
        head = response_head(entry.status, entry_headers(entry, now, status, self.name, epoch))
        object.__setattr__(outcome, "_head", (moment, entry, head))
        return head

    def _in_memory(self, key: str, headers: Headers) -> tuple[str, Stored | None]:
        """The key the request's variant is stored under and what memory holds there: a
        varied answer's marker is followed by the variant `headers` select, as the engine's
        `find` does over every tier."""
        stored = self.memory.peek(key)
        if type(stored) is VaryMarker:
            marker = stored
            key = variant_key(key, marker.vary, headers)
            stored = self.memory.peek(key)
            if marker.invalidated and marker.hides(stored):
                return key, None
        return key, stored

    def _protocol_key(self, target: bytes, client: tuple[str, int] | None) -> str | None:
        """The cache key of an origin-form `target` from an admitted client, for requests
        `proxy.protocol` may answer itself; None for the rest (admin routes, a client or
        forward mode the gate must check)."""
        if target[:1] != b"/" or target.startswith(b"/_outpost/"):
            return None
        if not self.gate.admits_known(client):
            return None
        key = self._keys.get(target) or self.key(_target_scope(target))  # the same memo
        return key if isinstance(key, str) else None  # a refused target: the app says why


def _is_feed(key: str) -> bool:
    """Whether a primary key is the change feed's (`outpost.urls.FEED_PATH`, as the app sees
    its path: percent-decoded)."""
    path = key.partition("?")[0]
    return (unquote(path) if "%" in path else path) == FEED_PATH


def _target_scope(target: bytes) -> Scope:
    """The path fields of an ASGI scope for an origin-form request target, as uvicorn fills
    them (the path percent-decoded, the raw path and query as received)."""
    raw, _, query = target.partition(b"?")
    raw = raw.partition(b"#")[0]
    return {"path": unquote(raw.decode("latin-1")), "raw_path": raw, "query_string": query}
