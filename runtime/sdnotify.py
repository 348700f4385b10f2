"""systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram per state change on $NOTIFY_SOCKET.

``keepalive()`` is a task for a service's event loop: it says READY=1 once, then WATCHDOG=1 every half of
$WATCHDOG_USEC. Because it runs *on* the loop, a loop that hangs stops the keep-alives and systemd restarts the
service after ``WatchdogSec=``. Outside systemd (no $NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)


def _address() -> str | None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return None
    return "\0" + addr[1:] if addr.startswith("@") else addr  # '@' names an abstract socket


def notify(state: str) -> bool:
    """Send ``state`` (e.g. "READY=1", "WATCHDOG=1", "STOPPING=1"); False when not under systemd or on error."""
    addr = _address()
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(state.encode())
        return True
    except OSError as exc:
        log.warning("sd_notify %s to %s failed: %s", state, addr, exc)
        return False


def watchdog_interval() -> float | None:
    """Seconds between keep-alives (half of WatchdogSec=), or None when systemd did not ask for any."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


async def keepalive(status: str = "") -> None:
    """READY=1, then WATCHDOG=1 every half watchdog period until cancelled (then STOPPING=1)."""
    notify("READY=1" + (f"\nSTATUS={status}" if status else ""))
    interval = watchdog_interval()
    try:
        while interval is not None:
            await asyncio.sleep(interval)
            notify("WATCHDOG=1")
        await asyncio.Event().wait()
    finally:
        notify("STOPPING=1")
