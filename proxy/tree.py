"""The cache tree: children registered with this proxy, and flush/warm/purge fanned out to them.

A child registers (and re-registers, as a heartbeat) with `POST /_outpost/register`; the answer
carries this proxy's epoch, so a child that missed a flush catches up within one heartbeat.
A heartbeat may also carry the child's own totals (`figures`: answers, hits, epoch), which the
parent checks (`proxy.core.history.parse_figures`), keeps as the child's last figures and plots
on its dashboard (`proxy.dashboard`).
A flush goes to every registered child concurrently (bounded), each answering for its own
subtree; the result counts every cache that acknowledged and names every one that did not (and,
for a purge, what each cache removed).
What goes to a child is signed for that child alone (`proxy.core.signing`); no bearer token
ever leaves this proxy towards a registered URL, and the registration token goes only to the
configured parent.

With several worker processes the registry lives in a SQLite file in the state directory, so
whichever worker receives a registration or a flush sees every child.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from outpost.redact import redact_text, redact_url
from proxy.core.history import Figures
from proxy.core.signing import SIGNATURE_HEADER, Nonces, Signer

__all__ = [
    "Child",
    "FanOut",
    "FanOutResult",
    "Registry",
    "child_failure",
    "heartbeat",
    "state_database",
]

log = logging.getLogger("outpost.proxy.tree")

MAX_ANSWER_BYTES = 16 * 1024 * 1024  # a child's answer to a command: its subtree's, summarised


@dataclass(frozen=True)
class Child:
    name: str
    url: str
    last_seen: float  # Unix seconds
    figures: Figures | None = None  # what its last heartbeat reported of itself, if anything


def state_database(path: Path, busy_ms: int) -> sqlite3.Connection:
    """A SQLite file in the state directory that this proxy's worker processes share: autocommit,
    WAL (readers never wait for the writer), no fsync (it is rebuilt by heartbeats and samples if
    lost), and a writer waits at most `busy_ms` for another."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    return db


class Registry:
    """Children by name; in memory, or in a SQLite file shared by worker processes."""

    def __init__(self, path: Path | None = None) -> None:
        self._children: dict[str, Child] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = state_database(path, busy_ms=5000)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS children (name TEXT PRIMARY KEY, url TEXT, seen REAL)"
            )
            _add_figure_columns(self._db)
            self._db.execute("CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, at REAL)")

    def nonces(self, window: float) -> Nonces | None:
        """Where signed commands' nonces are kept: this file when worker processes share it (a
        command replayed to another worker is refused too), else None (the caller's memory)."""
        return None if self._db is None else _SharedNonces(self._db, window)

    def register(
        self, name: str, url: str, now: float | None = None, figures: Figures | None = None
    ) -> None:
        """Add or renew a child; `figures`, what its heartbeat said of itself, replace the
        last ones (None: it said nothing)."""
        seen = time.time() if now is None else now
        if self._db is None:
            self._children[name] = Child(name, url, seen, figures)
            return
        numbers = (None,) * len(FIGURE_COLUMNS) if figures is None else _columns(figures)
        self._db.execute(
            "INSERT INTO children (name, url, seen, requests, hits, epoch, caches, unhealthy) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET url = excluded.url, seen = excluded.seen, "
            "requests = excluded.requests, hits = excluded.hits, epoch = excluded.epoch, "
            "caches = excluded.caches, unhealthy = excluded.unhealthy",
            (name, url, seen, *numbers),
        )

    def children(self, now: float | None = None, expiry: float | None = None) -> list[Child]:
        """Registered children, without those silent for longer than `expiry` seconds."""
        now = time.time() if now is None else now
        if self._db is None:
            found = list(self._children.values())
        else:
            rows = self._db.execute(
                "SELECT name, url, seen, requests, hits, epoch, caches, unhealthy "
                "FROM children ORDER BY name"
            )
            found = [
                Child(name, url, seen, None if numbers[0] is None else _figures(*numbers))
                for name, url, seen, *numbers in rows
            ]
        if expiry is not None:
            found = [c for c in found if now - c.last_seen <= expiry]
        return sorted(found, key=lambda c: c.name)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def _add_figure_columns(db: sqlite3.Connection) -> None:
    """The children table of an older state directory gains the figures' columns."""
    present = {row[1] for row in db.execute("PRAGMA table_info(children)")}
    for column in FIGURE_COLUMNS:
        if column not in present:
            try:
                db.execute(f"ALTER TABLE children ADD COLUMN {column} INTEGER")
            except sqlite3.OperationalError as exc:  # another worker added it just now
                if "duplicate column" not in str(exc):
                    raise


FIGURE_COLUMNS = ("requests", "hits", "epoch", "caches", "unhealthy")


def _columns(figures: Figures) -> tuple[int, ...]:
    return tuple(getattr(figures, column) for column in FIGURE_COLUMNS)


def _figures(
    requests: int, hits: int, epoch: int, caches: int | None, unhealthy: int | None
) -> Figures:
    """A row's figures (a row written before the subtree columns existed counts alone)."""
    return Figures(requests, hits, epoch, caches or 1, unhealthy or 0)


@dataclass
class _SharedNonces:
    db: sqlite3.Connection
    window: float

    def first_time(self, nonce: str, now: float) -> bool:
        self.db.execute("DELETE FROM nonces WHERE at < ?", (now - 2 * self.window,))
        inserted = self.db.execute("INSERT OR IGNORE INTO nonces VALUES (?, ?)", (nonce, now))
        return bool(inserted.rowcount)


@dataclass
class FanOutResult:
    acked: int = 0
    caches: list[str] = field(default_factory=list)  # names of the caches that acknowledged
    failed: list[dict[str, str]] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=dict)  # purge: entries removed, by cache


@dataclass
class FanOut:
    """Sends one admin request to every child, concurrently and bounded.

    Each fan-out uses its own aiohttp session without keep-alive: children are distinct hosts,
    so pooled connections would not be reused. (httpx's client took twice as long for 2000
    children: `benchmarks/flush_fanout.py`.)
    """

    signer: Signer | None  # None: children refuse what this proxy forwards (no tree key)
    concurrency: int = 256
    timeout: float = 10.0

    async def send(self, children: list[Child], path: str, body: dict[str, Any]) -> FanOutResult:
        """Send a flush, warm or purge; the acknowledgements counted."""
        result = FanOutResult()
        answers, result.failed = await self.collect(children, path, body)
        for child, answer in answers:
            try:
                acked = int(answer.get("acked", 1))
                caches = [str(name) for name in answer.get("caches", [child.name])]
                failed = list(answer.get("failed", []))
                removed = {str(k): int(v) for k, v in answer.get("removed", {}).items()}
            except (ValueError, TypeError, AttributeError):
                result.failed.append(child_failure(child, "answer is not the expected JSON"))
                continue
            result.acked += acked
            result.caches.extend(caches)
            result.failed.extend(failed)
            result.removed.update(removed)
        result.caches.sort()
        result.failed.sort(key=lambda f: str(f.get("name", "")))
        return result

    async def collect(
        self, children: list[Child], path: str, body: dict[str, Any]
    ) -> tuple[list[tuple[Child, Any]], list[dict[str, str]]]:
        """POST `body` to `path` of every child: the JSON answers of those that answered 200,
        and a failure for each of the others (an answer over MAX_ANSWER_BYTES is one)."""
        connector = aiohttp.TCPConnector(limit=self.concurrency, force_close=True)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        ) as session:
            return await self._collect(session, children, path, body)

    async def _collect(
        self,
        session: aiohttp.ClientSession,
        children: list[Child],
        path: str,
        body: dict[str, Any],
    ) -> tuple[list[tuple[Child, Any]], list[dict[str, str]]]:
        answers: list[tuple[Child, Any]] = []
        failed: list[dict[str, str]] = []
        payload = orjson.dumps(body)

        async def one(child: Child) -> None:
            headers = {"content-type": "application/json"}
            if self.signer is not None:
                signed = self.signer.header("POST", path, child.name, payload, time.time())
                headers[SIGNATURE_HEADER] = signed
            try:
                async with session.post(
                    child.url.rstrip("/") + path, data=payload, headers=headers
                ) as response:
                    status = response.status
                    content = await _read_bounded(response, MAX_ANSWER_BYTES + 1)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                failed.append(child_failure(child, f"{type(exc).__name__}: {exc}"))
                return
            if status != 200:
                failed.append(child_failure(child, f"status {status}"))
                return
            if len(content) > MAX_ANSWER_BYTES:
                failed.append(child_failure(child, f"answer over {MAX_ANSWER_BYTES} bytes"))
                return
            try:
                answers.append((child, orjson.loads(content)))
            except orjson.JSONDecodeError:
                failed.append(child_failure(child, "answer is not the expected JSON"))

        await asyncio.gather(*(one(child) for child in children))
        return answers, failed


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The answer's body, or its first `limit` bytes if it is longer. (`content.read(n)`
    returns what one read brings, which cuts a long answer short.)"""
    chunks, size = [], 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def child_failure(child: Child, error: str) -> dict[str, str]:
    return {"name": child.name, "url": redact_url(child.url), "error": redact_text(error)[:300]}


@contextlib.asynccontextmanager
async def heartbeat(
    parent: str,
    me: dict[str, str],
    token: str | None,
    every: float,
    on_epoch: Any,
    figures: Callable[[], Figures] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,  # tests: the parent in process
) -> Any:
    """Register with `parent` now and every `every` seconds until the context ends; `token` is
    the registration token, which can register and nothing else. With `figures`, each beat
    also carries this cache's own totals (`{"figures": {"requests", "hits", "epoch"}}`), which
    the parent's dashboard plots; a parent that does not know them ignores them."""

    async def beat() -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        retry = min(every, 0.5)
        while True:
            pause = every
            body: dict[str, Any] = dict(me)
            if figures is not None:
                body["figures"] = figures().document()
            try:
                response = await client.post(
                    parent.rstrip("/") + "/_outpost/register", json=body, headers=headers, timeout=5
                )
                if response.status_code == 200:
                    on_epoch(response.json().get("epoch"))
                    retry = min(every, 0.5)
                else:
                    log.warning(
                        "parent %s refused registration: %s",
                        redact_url(parent),
                        redact_text(response.text[:200]),
                    )
            except (httpx.HTTPError, ValueError):
                # The parent is down or restarting: retry soon, backing off to the heartbeat.
                pause, retry = retry, min(every, retry * 2)
            await asyncio.sleep(pause)

    async with httpx.AsyncClient(
        trust_env=False, headers={"user-agent": "outpost-proxy"}, transport=transport
    ) as client:
        task = asyncio.get_running_loop().create_task(beat())
        try:
            yield task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
