"""Where the hub's memory goes: an opt-in heap probe for soak runs (off unless the environment asks for it).

    DOZOR_HUB_MEMPROBE=/tmp/hub-mem.jsonl DOZOR_HUB_MEMPROBE_S=60 dozor hub run --config hub.toml

With ``DOZOR_HUB_MEMPROBE`` set, the hub starts ``tracemalloc`` (``DOZOR_HUB_MEMPROBE_FRAMES`` frames, default 4)
and every ``DOZOR_HUB_MEMPROBE_S`` seconds (default 60) appends one JSON line to that file: the traced total,
the 25 source lines whose allocations grew most since the first snapshot, the 8 biggest-growing tracebacks, and
the live-object counts by type that grew most (the gc's view, like objgraph's ``growth``). tracemalloc costs
CPU and memory itself: use it to find a leak, not in production.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
import tracemalloc
from collections import Counter
from pathlib import Path

ENV = "DOZOR_HUB_MEMPROBE"


def _types() -> Counter:
    return Counter(type(o).__name__ for o in gc.get_objects())


def _stat(s: tracemalloc.StatisticDiff) -> dict:
    return {"size_diff_kb": round(s.size_diff / 1024, 1), "count_diff": s.count_diff,
            "size_kb": round(s.size / 1024, 1), "where": [f"{f.filename}:{f.lineno}" for f in s.traceback]}


async def run_probe(path: Path, interval_s: float, frames: int) -> None:
    """Snapshot, compare with the first snapshot, append a line; forever (cancel to stop)."""
    if not tracemalloc.is_tracing():
        tracemalloc.start(frames)
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    base = tracemalloc.take_snapshot().filter_traces(ignore)
    base_types = _types()
    t0 = time.monotonic()
    while True:
        await asyncio.sleep(interval_s)
        snap = tracemalloc.take_snapshot().filter_traces(ignore)
        types = _types()
        grew = sorted(((n, c - base_types.get(n, 0)) for n, c in types.items()), key=lambda x: -x[1])[:20]
        current, peak = tracemalloc.get_traced_memory()
        line = {"t_s": round(time.monotonic() - t0), "traced_mb": round(current / 2**20, 2),
                "peak_mb": round(peak / 2**20, 2),
                "top_lines": [_stat(s) for s in snap.compare_to(base, "lineno")[:25]],
                "top_tracebacks": [_stat(s) for s in snap.compare_to(base, "traceback")[:8]],
                "object_growth": dict(grew)}
        await asyncio.to_thread(_append, path, json.dumps(line) + "\n")


def _append(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text)


def from_env() -> tuple[Path, float, int] | None:
    """The probe's settings when ``DOZOR_HUB_MEMPROBE`` names a file, else None."""
    target = os.environ.get(ENV)
    if not target:
        return None
    return (Path(target), float(os.environ.get(f"{ENV}_S", "60")),
            int(os.environ.get(f"{ENV}_FRAMES", "4")))
