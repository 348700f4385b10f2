"""Gateway health as a telemetry reading (kind "health", device = the gateway id).

Metrics (all optional but the uplink and outbox ones; a metric that cannot be read is left out and
counted ``health_unreadable.<metric>``, never invented):

    cpu_temp_c            /sys/class/thermal/thermal_zone*/temp (the "cpu"/"soc" zone, else the first)
    load1, load5, load15  os.getloadavg()
    disk_free_bytes, disk_free_pct   free space of the state_dir file system
    uplink_up             1 / 0
    outbox_depth, outbox_bytes, outbox_oldest_age_s, outbox_dropped
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

from contract.models import OutboxStats, Reading
from gateway.counters import Counters

THERMAL_ROOT = Path("/sys/class/thermal")
CPU_ZONE_TYPES = ("cpu", "soc", "x86_pkg_temp", "coretemp")


def cpu_temperature(root: Path = THERMAL_ROOT) -> float | None:
    """CPU temperature in degC, or None when the machine exposes no thermal zone."""
    zones = sorted(root.glob("thermal_zone*"))
    if not zones:
        return None

    def kind(z: Path) -> str:
        try:
            return (z / "type").read_text().strip().lower()
        except OSError:
            return ""

    zones.sort(key=lambda z: 0 if any(t in kind(z) for t in CPU_ZONE_TYPES) else 1)
    for zone in zones:
        try:
            return int((zone / "temp").read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
    return None


class HealthProbe:
    def __init__(self, gateway_id: str, state_dir: str | os.PathLike[str], *,
                 outbox_stats: Callable[[], OutboxStats] | None = None,
                 uplink_up: Callable[[], bool] | None = None, thermal_root: Path = THERMAL_ROOT,
                 counters: Counters | None = None, clock: Callable[[], float] = time.time) -> None:
        self.gateway_id = gateway_id
        self.state_dir = Path(state_dir)
        self.outbox_stats = outbox_stats
        self.uplink_up = uplink_up
        self.thermal_root = thermal_root
        self.counters = counters if counters is not None else Counters()
        self.clock = clock

    def _missing(self, metric: str) -> None:
        self.counters.inc(f"health_unreadable.{metric}")

    def read(self) -> Reading:
        m: dict[str, float] = {}
        temp = cpu_temperature(self.thermal_root)
        if temp is None:
            self._missing("cpu_temp_c")
        else:
            m["cpu_temp_c"] = temp
        try:
            m["load1"], m["load5"], m["load15"] = os.getloadavg()
        except OSError:
            self._missing("load")
        try:
            st = os.statvfs(self.state_dir)
            m["disk_free_bytes"] = float(st.f_bavail * st.f_frsize)
            m["disk_free_pct"] = round(100.0 * st.f_bavail / st.f_blocks, 2) if st.f_blocks else 0.0
        except OSError:
            self._missing("disk")
        if self.uplink_up is not None:
            m["uplink_up"] = 1.0 if self.uplink_up() else 0.0
        if self.outbox_stats is not None:
            s = self.outbox_stats()
            m.update(outbox_depth=float(s.depth), outbox_bytes=float(s.bytes),
                     outbox_oldest_age_s=round(s.oldest_age_s, 3), outbox_dropped=float(s.dropped))
        return Reading(device=self.gateway_id, kind="health", ts=self.clock(), metrics=m)


async def run_health(probe: HealthProbe, submit: Callable[[Reading], object], interval_s: float = 60.0, *,
                     first_after_s: float | None = None,
                     log: logging.Logger | logging.LoggerAdapter | None = None) -> None:
    """Submit a health reading every ``interval_s`` until cancelled. The first one comes after a random part
    of the interval, so a fleet that (re)starts together does not report all at once."""
    log = log or logging.getLogger("dozor.gateway.health")
    await asyncio.sleep(random.uniform(0, min(interval_s, 30.0)) if first_after_s is None else first_after_s)
    while True:
        try:
            submit(await asyncio.to_thread(probe.read))
        except Exception:  # a probe bug must not stop health reporting
            probe.counters.inc("health_errors")
            log.exception("health probe failed")
        await asyncio.sleep(interval_s)
