"""The cyclic garbage collector for a long-running service: start-up objects frozen, young passes rarer.

CPython's collector runs a young-generation pass every 700 net container allocations, an older one every tenth of
those, and a full pass when enough objects have piled up; each older pass walks every container alive in that
generation, item by item. In the hub that means the modules, config and app built at start-up (~130,000 objects,
never garbage) and the telemetry tail's row lists (``hub.ingest.latest``: ~300,000 items), walked again and
again while a telemetry backlog is parsed: a full pass took 55-150 ms, an older one 1.5-5 ms, on this machine
(``gc.callbacks`` in a ``bench.ingest`` run; docs/benchmarks.md, issue 12, eleventh session).

``settle()``, called once the service is built:

* ``gc.collect()`` then ``gc.freeze()``: what start-up left alive moves to the permanent generation, which no
  pass walks any more (what it left as garbage is collected first). The standard way to keep long-lived
  start-up state out of the collector's way: its objects are still freed when their reference count drops to
  zero, but a cycle among them is never collected, so call it once, after start-up;
* the young threshold from 700 to ``YOUNG_THRESHOLD``: the young passes walk as many objects in all (each walks
  the young generation once), but the older passes come a tenth as often. Garbage cycles live a little longer
  (at most ``YOUNG_THRESHOLD`` allocations); objects without cycles are freed at once, as always.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def settle(young: int = YOUNG_THRESHOLD) -> tuple[int, int]:
    """Freeze what is alive now and raise the young threshold; returns (objects frozen, the old young threshold)."""
    gc.collect()
    gc.freeze()
    old, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, full)
    return gc.get_freeze_count(), old
