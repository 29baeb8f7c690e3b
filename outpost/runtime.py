"""Process-level tuning of the long-running proxies: the cyclic garbage collector, and glibc's
malloc.

A node cache keeps a large, stable heap of entries and allocates a few short-lived objects per
hit. In a cold start it also holds thousands of requests at once, each with some 25 live
objects (protocol, parser, scope, request cycle, waiter, timers) until its answer is written.
CPython collects the young generation every 700 net allocations, and every collection walks
every young object still alive: profiling a node cache in a run-start storm put a tenth of its
CPU there. Raising the threshold (50 000 until 2026-12-07) took that CPU off, but moved it
into one pause: in the cold stampede (`benchmarks/cold_stampede.py`, 2000 requests in flight)
each young collection stopped the proxy for 16 to 30 ms and an occasional full one for 300 ms and
more, in the middle of the burst, while the upstream fetches waited to be sent.

So the proxy collects when its event loop is quiet (`QuietCollector`, started by the app):
every `TICK_SECONDS` a timer looks at how late it ran. A loop that has run its timers on time
for `QUIET_TICKS` ticks in a row has no burst in hand, and the generations due are collected
then, the older ones in CPython's own ratios. A loop never quiet still collects the young
generation once it holds `BUSY_YOUNG` objects (a pause of some 40 ms), and the interpreter's
own trigger stays as a backstop at `BACKSTOP_YOUNG` for a loop that cannot run its timers.

A proxy relaying a large object receives it in chunks of up to 256 KiB, allocated and freed
by the hundred per object. glibc's malloc serves a block above its mmap threshold (128 KiB to
start with) with a fresh mapping, and gives the top of its heap back to the kernel once 128 KiB
of it are free, so every chunk cost page faults and zeroed pages: in `benchmarks/tree_transfer.py`
a tier spent 17 ms of system time per cold 10 MiB object, most of it in the page-fault
handler (perf). `tune_malloc` sets the mmap threshold above the largest chunk (`MMAP_THRESHOLD`) and
keeps up to `TRIM_THRESHOLD` of free heap for reuse: 10 ms of system time per object, the rest
being the socket copies and the stored body's own pages. Objects of `MMAP_THRESHOLD` and more
(the stored bodies of large payloads) still get mappings of their own, returned whole to the
kernel when they are evicted. An operator's own `MALLOC_*_` or `GLIBC_TUNABLES` malloc setting
wins: nothing is changed then.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import platform
from collections.abc import Mapping

__all__ = [
    "BACKSTOP_YOUNG",
    "BUSY_YOUNG",
    "MIN_YOUNG",
    "QUIET_TICKS",
    "YOUNG_THRESHOLD",
    "QuietCollector",
    "generation_due",
    "malloc_options",
    "tune_gc",
    "tune_malloc",
    "tune_process",
]

YOUNG_THRESHOLD = 50_000  # automatic young collections of a process without a QuietCollector
BACKSTOP_YOUNG = 250_000  # automatic young collections under a QuietCollector
BUSY_YOUNG = 100_000  # young objects collected even while the loop is busy
MIN_YOUNG = 5_000  # young objects worth a collection when the loop is quiet
TICK_SECONDS = 0.05
LATE_SECONDS = 0.003  # a tick this late means the loop had a burst in hand
QUIET_TICKS = 4  # on-time ticks in a row that make a quiet loop (200 ms)

MMAP_THRESHOLD = 1 << 20  # above a relayed chunk (256 KiB), below a large stored body
TRIM_THRESHOLD = 64 << 20  # free heap kept for reuse before any is given back
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (<malloc.h>)


def tune_gc(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Move every object alive now out of the collector's sight (`gc.freeze`) and collect the
    young generation every `young_threshold` net allocations; older generations keep their
    ratios, so cycles are still found, only less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)


def generation_due(
    count: tuple[int, int, int], thresholds: tuple[int, int, int], quiet: bool
) -> int | None:
    """The generation to collect now (`gc.collect(n)`), or None.

    `count` and `thresholds` are `gc.get_count()` and `gc.get_threshold()`: young objects,
    then young collections since the last middle one, middle collections since the last full
    one. A quiet loop collects from `MIN_YOUNG` young objects, and the older generations when
    CPython would (every `thresholds[1]` young, every `thresholds[2]` middle collections); a
    busy one only the young generation, and only from `BUSY_YOUNG`."""
    young, young_runs, middle_runs = count
    if not quiet:
        return 0 if young >= BUSY_YOUNG else None
    if young < MIN_YOUNG:
        return None
    _, middle, old = thresholds
    if young_runs + 1 < middle:
        return 0
    return 1 if middle_runs + 1 < old else 2


class QuietCollector:
    """Runs the collections `generation_due` names from a timer on the running loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.on_time = 0  # ticks in a row that ran on time
        self.collections = [0, 0, 0]  # per generation, made here
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Tick from now on; the automatic trigger becomes a backstop."""
        _, middle, old = gc.get_threshold()
        gc.set_threshold(BACKSTOP_YOUNG, middle, old)
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def tick(self, late: float) -> int | None:
        """One look, `late` seconds after it was due: the generation collected, if any."""
        self.on_time = self.on_time + 1 if late < LATE_SECONDS else 0
        quiet = self.on_time >= QUIET_TICKS
        generation = generation_due(gc.get_count(), gc.get_threshold(), quiet)
        if generation is not None:
            gc.collect(generation)
            self.collections[generation] += 1
        return generation

    def _schedule(self) -> None:
        self._due = self.loop.time() + TICK_SECONDS
        self._timer = self.loop.call_at(self._due, self._run)

    def _run(self) -> None:
        self.tick(self.loop.time() - self._due)
        self._schedule()


def malloc_options(environ: Mapping[str, str]) -> dict[int, int]:
    """The `mallopt` settings to make in a process started with `environ`: none when the
    operator tuned malloc already (glibc reads `MALLOC_*_` and `GLIBC_TUNABLES` at start-up)."""
    if any(name.startswith("MALLOC_") and name.endswith("_") for name in environ):
        return {}
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        return {}
    return {M_MMAP_THRESHOLD: MMAP_THRESHOLD, M_TRIM_THRESHOLD: TRIM_THRESHOLD}


def tune_malloc(environ: Mapping[str, str]) -> bool:
    """Apply `malloc_options` on glibc; whether anything was set (never on another libc)."""
    options = malloc_options(environ)
    if not options or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    return all(mallopt(param, value) == 1 for param, value in options.items())


def tune_process(environ: Mapping[str, str]) -> None:
    """What a proxy's entry point does once its app is built (so that the app's long-lived
    objects are frozen too): `tune_gc`, then `tune_malloc`."""
    tune_gc()
    tune_malloc(environ)
