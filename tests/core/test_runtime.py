"""The servers' collector tuning: start-up objects frozen, young collections less frequent."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from outpost.runtime import YOUNG_THRESHOLD, tune_gc


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
