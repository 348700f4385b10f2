"""Hand freed heap back to the operating system (glibc), so a long-running process's RSS follows what it holds.

A hub that starts an alert to a thousand sirens builds thousands of short-lived objects in a few seconds; Python
frees them, but glibc's malloc keeps the freed pages (in the main heap and in one arena per thread that ever
allocated) for reuse. The process's RSS then stays at the peak of its busiest moment and creeps up with each new
peak, although live objects stay level (issue 12's soak: +10 % in an hour, in steps at alert starts, with
VmRSS == VmHWM). Two standard glibc knobs bound that:

* ``limit_arenas(n)``: ``mallopt(M_ARENA_MAX, n)`` before the process starts its threads (glibc's default is
  8 x cores arenas, each keeping its own free pages; the same as ``MALLOC_ARENA_MAX`` in the environment);
* ``trim()``: ``malloc_trim(0)`` returns free pages at the top of every arena and, since glibc 2.8, whole free
  pages inside them (``madvise(MADV_DONTNEED)``); ``trim_every(s, quiet=...)`` runs it periodically when the
  process is quiet (it takes ~30 ms on a fragmented 300 MB heap here, holding malloc's locks).

On a C library without them (musl, macOS) both do nothing and say so (``available()``).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc malloc.h


def _libc() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(None)
    except OSError:
        return None
    if not (hasattr(lib, "malloc_trim") and hasattr(lib, "mallopt")):
        return None
    lib.malloc_trim.argtypes, lib.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    lib.mallopt.argtypes, lib.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return lib


_LIBC = _libc()


def available() -> bool:
    return _LIBC is not None


def limit_arenas(n: int = 2) -> bool:
    """At most ``n`` malloc arenas (call before starting threads). ``MALLOC_ARENA_MAX`` in the environment wins."""
    if _LIBC is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(_LIBC.mallopt(M_ARENA_MAX, max(1, n)))


def trim() -> bool:
    """Return free heap pages to the OS now; True if any were."""
    return _LIBC is not None and bool(_LIBC.malloc_trim(0))


async def trim_every(interval_s: float, *, quiet: Callable[[], bool] = lambda: True,
                     recheck_s: float = 5.0) -> None:
    """``trim()`` every ``interval_s`` seconds, forever (a supervised task; cancel to stop), but only while
    ``quiet()`` says so: a trim walks the whole heap and holds malloc's locks meanwhile (tens of milliseconds on
    a fragmented heap of a few hundred MB), so a hub trims between alerts, not while it sends one."""
    if _LIBC is None:
        log.info("malloc_trim is not available in this C library: freed heap stays with the process")
        await asyncio.Event().wait()
    wait = interval_s
    while True:
        await asyncio.sleep(wait)
        if quiet():
            trim()
            wait = interval_s
        else:
            wait = recheck_s
