"""Locust scenario: simulated HLT farm nodes configuring themselves at each run start.

Each `HLTNode` user is one farm node bound to one node proxy of the tree (round-robin over
`OUTPOST_LOADTEST_NODES`, comma-separated URLs). Run control signals a run start by writing
`"<run> <t0>"` (run number, wall-clock start) to the file named by `OUTPOST_LOADTEST_RUN_FILE`;
one greenlet per Locust process polls it and wakes that process's nodes (thousands of users
polling a file themselves would take the CPU the storm needs). When the run changes each node
resolves the global tag for the run and fetches every payload it names, checking each body
against its SHA-256. A wrong byte or a bad answer is a Locust failure, never a success.

When a node has finished a run it appends one JSON line to `<OUTPOST_LOADTEST_OUT>.<pid>`, a
file of its own Locust process (a prefix, not a file name: with `--processes` or worker
processes several Locust processes write at once, and the runner reads every such file):
`{"event": "run", "run", "node", "proxy", "seconds", "fetch_seconds", "finished_at", "verified",
"failures", "requests", "bytes", "cache", "timeline"}`, where `seconds` counts from the run
start `t0`, `cache` counts hits and misses by tier (from `Cache-Status`, RFC 9211: the last entry
is the node proxy, the one before it the site proxy; or from squid's `X-Cache` lines, in the same
order) and `timeline` has one `[start, seconds, tier]` per request: when it started (seconds
after `t0`), how long it took, and `"h"` if the node tier served it as a hit, `"m"` if not, `""`
when no cache said. Each node opens its connection when it is spawned (one GET of the global
tag list), as a farm node that is up before the run has, and then writes
`{"event": "ready", "node"}`; the connection stays open between runs (Outpost's proxies keep
idle connections `keepalive_seconds`, squid 2 minutes, nginx here 5 minutes).
Node names are `hlt-<pid>-<n>`: unique across Locust processes, which each count users from 1.

    OUTPOST_LOADTEST_GLOBALTAG     global tag to resolve (default OUTPOST_HLT_2026_V1)
    OUTPOST_LOADTEST_POLL          seconds between polls of the run file (default 0.05)
    OUTPOST_LOADTEST_SOFT_REFRESH  "1": the resolve request of each run carries
                                   `Cache-Control: max-age=0` (frontier_client's soft refresh,
                                   how squid users make a cache revalidate: squid has no flush)
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from typing import Any, Final

import gevent
import orjson
from gevent.event import Event
from locust import FastHttpUser, constant, task

from loadtest.runner import TIERS, cache_tiers, read_run_file
from outpost.client.answers import Unusable, decode_resolution
from outpost.runtime import tune_gc
from outpost.urls import GlobalTagList, Payload, Resolve

__all__ = ["HLTNode"]

_NODES: Final = [url for url in os.environ.get("OUTPOST_LOADTEST_NODES", "").split(",") if url]
_RUN_FILE: Final = os.environ.get("OUTPOST_LOADTEST_RUN_FILE", "")
_OUT: Final = os.environ.get("OUTPOST_LOADTEST_OUT", "")
_GLOBALTAG: Final = os.environ.get("OUTPOST_LOADTEST_GLOBALTAG", "OUTPOST_HLT_2026_V1")
_POLL: Final = float(os.environ.get("OUTPOST_LOADTEST_POLL", "0.05"))
_SOFT_REFRESH: Final = os.environ.get("OUTPOST_LOADTEST_SOFT_REFRESH") == "1"
_RESOLVE_HEADERS: Final = {"Cache-Control": "max-age=0"} if _SOFT_REFRESH else None
# Bytes a node asks of its socket per recv(). geventhttpclient reads 4 KiB at a time, so a
# storm's ~2 GB per run took about 900 000 recv() calls per Locust process, each through
# gevent's socket wrapper and the response parser; at 64 KiB the same bodies take about
# 110 000, and Locust spends roughly a tenth less CPU per run on every target alike.
READ_BLOCK: Final = 64 * 1024
_next_index = itertools.count()
tune_gc()  # thousands of users' per-request objects: the same collector tuning as the caches


class _RunSignal:
    """The run file as this process's nodes see it: one poller greenlet, an event per change."""

    def __init__(self) -> None:
        self.current = read_run_file(_RUN_FILE)
        self.changed = Event()
        self.poller: gevent.Greenlet[Any] | None = None

    def _poll(self) -> None:
        while True:
            gevent.sleep(_POLL)
            now = read_run_file(_RUN_FILE)
            if now[0] and now != self.current:
                self.current, changed = now, self.changed
                self.changed = Event()
                changed.set()

    def wait(self, last_run: int, timeout: float) -> tuple[int, float]:
        """The current (run, t0), once it differs from `last_run` or after `timeout` seconds."""
        if self.poller is None:
            self.poller = gevent.spawn(self._poll)
        if self.current[0] == last_run:
            self.changed.wait(timeout)
        return self.current


_RUNS: Final = _RunSignal()


def _append(line: dict[str, Any]) -> None:
    # One file per Locust process rather than one shared O_APPEND file: the users of a process
    # are gevent greenlets that never yield inside a write(), so lines of one file never mix,
    # and no reliance on cross-process O_APPEND atomicity (documented for pipes up to PIPE_BUF,
    # not for regular files). The pid is taken at each write, so it is right after a fork too
    # (`locust --processes`).
    if _OUT:
        with open(f"{_OUT}.{os.getpid()}", "ab") as out:  # one write per whole line
            out.write(orjson.dumps(line) + b"\n")


class HLTNode(FastHttpUser):
    """One farm node: configures itself at every run start through its node proxy."""

    wait_time = constant(0)  # the task itself blocks until the next run starts
    host = _NODES[0] if _NODES else None

    def __init__(self, environment: Any) -> None:
        self.index = next(_next_index)
        if _NODES:
            self.host = _NODES[self.index % len(_NODES)]
        super().__init__(environment)
        # The node's HTTP client is made at its first request, from these arguments.
        self.client.client.clientpool.client_args["block_size"] = READ_BLOCK
        self.name = f"hlt-{os.getpid()}-{self.index + 1}"
        self.last_run = 0

    def on_start(self) -> None:
        self.last_run, _ = _RUNS.current
        # Open this node's connection now, as a farm node that is up before the run starts
        # has; otherwise thousands of TCP handshakes land in the first second of the storm.
        with self.client.get(
            GlobalTagList().url(), name="connect", catch_response=True
        ) as response:
            response.success()  # any answer will do: only the connection matters
        _append({"event": "ready", "node": self.name})

    @task
    def wait_for_run(self) -> None:
        run, t0 = _RUNS.wait(self.last_run, timeout=1.0)
        if run == self.last_run:
            return
        self.last_run = run
        self.configure(run, t0)

    def configure(self, run: int, t0: float) -> None:
        began = time.time()
        t0 = t0 or began
        stats: dict[str, Any] = {"verified": 0, "failures": 0, "requests": 0, "bytes": 0}
        cache: dict[str, dict[str, int]] = {tier: {"hit": 0, "miss": 0} for tier in TIERS}
        timeline: list[tuple[float, float, str]] = []

        def count(response: Any, started: float) -> None:
            stats["requests"] += 1
            stats["bytes"] += len(response.content or b"")
            headers = response.headers
            tiers = cache_tiers(headers.get("cache-status"), headers.get("x-cache"))
            for tier, outcome in tiers.items():
                cache[tier][outcome] += 1
            node = tiers.get("node", "")[:1]
            timeline.append((round(started - t0, 4), round(time.time() - started, 4), node))

        query = Resolve(_GLOBALTAG, run)
        digests: tuple[str, ...] = ()
        started = time.time()
        with self.client.get(
            query.url(), name="resolve", headers=_RESOLVE_HEADERS, catch_response=True
        ) as response:
            count(response, started)
            if response.status_code != 200:
                response.failure(f"resolve answered {response.status_code}")
                stats["failures"] += 1
            else:
                try:
                    digests = decode_resolution(response.content, query).payloads
                except Unusable as exc:
                    response.failure(f"unusable resolve answer: {exc}")
                    stats["failures"] += 1
        for digest in digests:
            started = time.time()
            with self.client.get(
                Payload(digest).url(), name="payload", catch_response=True
            ) as response:
                count(response, started)
                body = response.content or b""
                if response.status_code != 200:
                    response.failure(f"payload {digest[:12]} answered {response.status_code}")
                    stats["failures"] += 1
                elif hashlib.sha256(body).hexdigest() != digest:
                    response.failure(f"payload {digest[:12]}: body does not match its SHA-256")
                    stats["failures"] += 1
                else:
                    stats["verified"] += 1
        finished = time.time()
        _append(
            {
                "event": "run",
                "run": run,
                "node": self.name,
                "proxy": self.host,
                "seconds": finished - t0,
                "fetch_seconds": finished - began,
                "finished_at": finished,
                **stats,
                "payloads": len(digests),
                "cache": cache,
                "timeline": timeline,
            }
        )
