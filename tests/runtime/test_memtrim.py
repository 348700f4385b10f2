"""runtime.memtrim: freed heap goes back to the OS (the hub's RSS follows what it holds, issue 12 §4)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from runtime import memtrim

PROBE = textwrap.dedent("""
    import json, sys
    from runtime import memtrim

    def rss_kb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

    base = rss_kb()
    blobs = [bytes(4096) for _ in range(40_000)]  # ~160 MB from malloc (objects over 512 bytes)
    keeper = bytes(4096)  # allocated last: the free space lies under it, so malloc cannot shrink the heap top
    full = rss_kb()
    del blobs
    freed = rss_kb()
    trimmed = memtrim.trim() if sys.argv[1] == "trim" else False
    print(json.dumps({"base": base, "full": full, "freed": freed, "after": rss_kb(), "trimmed": trimmed}))
""")


def run_probe(mode: str) -> dict:
    import json
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(__import__("pathlib").Path(__file__)
                                                                         .resolve().parents[2])})
    return json.loads(out.stdout)


def test_freed_heap_stays_with_the_process_until_it_is_trimmed():
    kept = run_probe("keep")
    trimmed = run_probe("trim")
    grown = kept["full"] - kept["base"]
    assert grown > 100_000  # the blobs were really there (kB)
    assert kept["after"] - kept["base"] > grown // 2  # without a trim glibc keeps the freed pages
    assert trimmed["trimmed"] is True
    assert trimmed["after"] - trimmed["base"] < (trimmed["full"] - trimmed["base"]) // 4  # with it they go back


def test_limit_arenas_respects_the_environment(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memtrim.limit_arenas(2) is False  # the deployer's setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert memtrim.limit_arenas(2) is True


async def test_trim_every_waits_for_a_quiet_moment(monkeypatch):
    import asyncio

    asked, trimmed = asyncio.Event(), asyncio.Event()
    state = {"busy": True, "asks": 0}
    monkeypatch.setattr(memtrim, "trim", lambda: trimmed.set() or True)

    def quiet() -> bool:
        state["asks"] += 1
        if state["asks"] >= 3:
            asked.set()
        return not state["busy"]

    task = asyncio.create_task(memtrim.trim_every(0.01, quiet=quiet, recheck_s=0.01))
    await asyncio.wait_for(asked.wait(), 10)
    assert not trimmed.is_set()  # an alert is open: no trim
    state["busy"] = False
    await asyncio.wait_for(trimmed.wait(), 10)
    task.cancel()
