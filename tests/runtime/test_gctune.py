"""runtime/gctune.py: ``settle()`` freezes what is alive and raises the young threshold (the hub calls it once it is
built); the collector still collects cycles made afterwards."""

from __future__ import annotations

import gc
import weakref

from runtime import gctune


class _Node:
    def __init__(self) -> None:
        self.me = self


def test_settle_freezes_the_heap_raises_the_young_threshold_and_still_collects_new_cycles():
    before = gc.get_threshold()
    try:
        alive = _Node()  # alive at settle: frozen, never walked again
        frozen, old = gctune.settle()
        assert old == before[0]
        assert frozen == gc.get_freeze_count() > 0
        assert gc.get_threshold() == (gctune.YOUNG_THRESHOLD, before[1], before[2])
        assert not any(o is alive for o in gc.get_objects())  # the collector's generations no longer hold it
        cycle = _Node()  # made afterwards: an ordinary object, collected once it is garbage
        ref = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert ref() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
