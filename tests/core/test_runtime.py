"""The proxies' collector tuning: start-up objects frozen, young collections less frequent, and
collections made when the event loop is quiet (`QuietCollector`), not in a burst; and their
malloc tuning: freed chunks reused, not faulted in afresh."""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator

import pytest

from outpost.runtime import (
    BACKSTOP_YOUNG,
    BUSY_YOUNG,
    M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD,
    MIN_YOUNG,
    MMAP_THRESHOLD,
    QUIET_TICKS,
    TRIM_THRESHOLD,
    YOUNG_THRESHOLD,
    QuietCollector,
    generation_due,
    malloc_options,
    tune_gc,
)


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_freezes_start_up_objects_and_keeps_the_older_generations_ratios() -> None:
    _, middle, old = gc.get_threshold()
    kept = [object() for _ in range(3)]  # alive at start-up: frozen with everything else
    tune_gc()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    assert gc.isenabled()


@pytest.mark.usefixtures("restored_gc")
def test_cycles_made_after_tuning_are_still_collected_without_being_asked() -> None:
    tune_gc(young_threshold=100)

    class Node:
        other: Node | None = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # only a collection can free a cycle
    garbage = [[] for _ in range(1000)]  # allocations past the threshold trigger one
    assert gone() is None
    del garbage


# --- collecting when the loop is quiet (`QuietCollector`) ----------------------------------------

THRESHOLDS = (700, 10, 10)


def test_a_busy_loop_collects_only_a_large_young_generation() -> None:
    assert generation_due((BUSY_YOUNG - 1, 9, 9), THRESHOLDS, quiet=False) is None
    assert generation_due((BUSY_YOUNG, 9, 9), THRESHOLDS, quiet=False) == 0  # never older ones


def test_a_quiet_loop_collects_the_generations_due_in_cpythons_ratios() -> None:
    assert generation_due((MIN_YOUNG - 1, 0, 0), THRESHOLDS, quiet=True) is None
    assert generation_due((MIN_YOUNG, 0, 0), THRESHOLDS, quiet=True) == 0
    assert generation_due((MIN_YOUNG, 9, 0), THRESHOLDS, quiet=True) == 1  # the 10th young run
    assert generation_due((MIN_YOUNG, 9, 9), THRESHOLDS, quiet=True) == 2  # the 10th middle run


@pytest.mark.usefixtures("restored_gc")
def test_the_collector_waits_for_quiet_ticks_and_backs_the_automatic_trigger_off() -> None:
    loop = asyncio.new_event_loop()
    try:
        collector = QuietCollector(loop)
        collector.start()
        assert gc.get_threshold()[0] == BACKSTOP_YOUNG
        garbage = [[] for _ in range(MIN_YOUNG * 2)]  # young objects alive now
        assert collector.tick(late=0.5) is None  # a late tick: a burst in hand
        for _ in range(QUIET_TICKS - 1):
            assert collector.tick(late=0.0) is None  # not quiet for long enough yet
        assert collector.tick(late=0.0) is not None  # quiet: collected
        assert sum(collector.collections) == 1
        del garbage
        collector.stop()
    finally:
        loop.close()


@pytest.mark.usefixtures("restored_gc")
def test_cycles_are_collected_by_the_ticks_of_a_running_loop() -> None:
    class Node:
        other: Node | None = None

    async def scenario() -> bool:
        collector = QuietCollector(asyncio.get_running_loop())
        collector.start()
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        padding = [[] for _ in range(MIN_YOUNG)]  # enough young objects to be worth it
        deadline = time.monotonic() + 5
        while gone() is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        del padding
        collector.stop()
        return gone() is None

    assert asyncio.run(scenario())


# --- malloc ------------------------------------------------------------------------------------

ROUNDS = """
import os, resource, sys
from outpost.runtime import tune_malloc
tuned = tune_malloc(os.environ) if sys.argv[1] == "tuned" else False
def rounds(n):  # a relayed 10 MiB object: its 256 KiB chunks all alive, then all freed
    for _ in range(n):
        chunks = [b"x" * (256 * 1024) for _ in range(40)]
        del chunks
rounds(2)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(10)
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(mode: str, **environ: str) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    done = subprocess.run(
        [sys.executable, "-c", ROUNDS, mode],
        env={**env, **environ},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    tuned, faults = done.stdout.split()
    return tuned == "True", int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tuned_malloc_reuses_freed_chunks_instead_of_faulting_in_fresh_pages() -> None:
    plain_tuned, plain = _page_faults("plain")
    tuned, faults = _page_faults("tuned")
    assert not plain_tuned and tuned
    assert plain > 2000  # 10 rounds of 10 MiB: glibc gave much of each back, then faulted it in
    assert faults < plain / 20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_an_operators_own_malloc_setting_is_left_alone() -> None:
    tuned, faults = _page_faults("tuned", MALLOC_TOP_PAD_="0")
    assert not tuned
    assert faults > 2000


def test_malloc_options_set_both_thresholds_unless_the_environment_tunes_malloc() -> None:
    assert malloc_options({"PATH": "/bin", "MALLOC_ARENA_MAX": "2"}) == {
        M_MMAP_THRESHOLD: MMAP_THRESHOLD,
        M_TRIM_THRESHOLD: TRIM_THRESHOLD,
    }
    assert malloc_options({"MALLOC_MMAP_THRESHOLD_": "65536"}) == {}
    assert malloc_options({"MALLOC_TRIM_THRESHOLD_": "0"}) == {}
    assert malloc_options({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}) == {}
    assert malloc_options({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"}) != {}
    assert 256 * 1024 < MMAP_THRESHOLD <= TRIM_THRESHOLD
