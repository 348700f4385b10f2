"""The event loop for long-running services: uvloop where it is installed (`pip install dozor[fast]`), else
asyncio's own. uvloop costs less CPU per event (docs/benchmarks.md). One difference matters: on a socket error
uvloop drops the fd's watcher without calling the reader again; runtime/mqtt.py probes for that (tests run the
MQTT layer on both loops: tests/runtime/test_mqtt_reset.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """DOZOR_EVENT_LOOP=asyncio forces asyncio's own loop (for comparisons)."""
    if os.environ.get("DOZOR_EVENT_LOOP", "").lower() == "asyncio":
        return asyncio.run(main)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
