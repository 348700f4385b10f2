"""Stopping the child processes a test or benchmark started (hubs, gateways, simulated cities)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


def stop_processes(procs: Sequence[subprocess.Popen], grace_s: float = 15) -> None:
    """SIGTERM every process still running, last started first; SIGKILL (and reap) what has not exited after
    ``grace_s``."""
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(grace_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
