"""Process-level tuning of the long-running servers (no I/O; called once before serving).

A node cache allocates a few short-lived objects per hit (header lists, tuples) and keeps a
large, stable heap of entries. CPython's default collector then runs a young-generation pass
every 700 net allocations and, as entries accumulate, full passes over the whole heap of
entries: profiling a node cache during a run-start storm put about a tenth of its CPU in
`gc_collect_main`. Freezing what start-up allocated and collecting the young generation less
often keeps reference cycles collected while taking that time off the hit path.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune_gc"]

YOUNG_THRESHOLD = 50_000  # allocations between young-generation collections (CPython: 700)


def tune_gc(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Move every object alive now out of the collector's sight (`gc.freeze`) and collect the
    young generation every `young_threshold` net allocations; older generations keep their
    ratios, so cycles are still found, only less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
