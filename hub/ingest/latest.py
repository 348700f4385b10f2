"""The hub's latest-state cache of telemetry: the newest value of every (gateway, device, metric), and a
bounded tail of recent readings with a cursor, for ``GET /api/v1/telemetry/latest``, ``/telemetry/tail``
and ``/air``. Fed by ``Ingest(on_reading=latest.on_reading)`` after dedup and range checks, so the cache
shows exactly what was written to the store. All in the hub's event loop; nothing here blocks or raises.

Cursors count readings from 1 since the hub started; a reader that falls more than ``tail_size`` readings
behind is told how many it ``missed`` (they are in the store, not in this short buffer).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from contract.models import Reading

PM_METRICS = ("pm2_5", "pm10")


@dataclass(slots=True)
class DeviceLatest:
    gateway: str
    device: str
    kind: str
    zone: str | None
    metrics: dict[str, Reading] = field(default_factory=dict)  # metric -> the newest reading that has it
    newest: float = float("-inf")

    def value(self, metric: str) -> float:
        return self.metrics[metric].metrics[metric]


@dataclass(frozen=True, slots=True)
class TailItem:
    cursor: int
    gateway: str
    zone: str | None
    reading: Reading


class LatestCache:
    def __init__(self, *, tail_size: int = 50_000, clock: Callable[[], float] = time.time) -> None:
        self.devices: dict[tuple[str, str], DeviceLatest] = {}
        self.tail: deque[TailItem] = deque(maxlen=tail_size)
        self.cursor = 0
        self.clock = clock
        self._event: asyncio.Event | None = None

    # ------------------------------------------------------------ in (the ingest pipeline)
    def on_reading(self, gateway: str, zone: str | None, reading: Reading) -> None:
        key = (gateway, reading.device)
        dev = self.devices.get(key)
        kind = getattr(reading.kind, "value", reading.kind)
        if dev is None:
            dev = self.devices[key] = DeviceLatest(gateway, reading.device, kind, zone)
        else:
            dev.zone, dev.kind = zone, kind
        ts, metrics = reading.ts, dev.metrics
        if ts >= dev.newest:  # the usual case: newer than everything this device sent
            dev.newest = ts
            metrics.update(dict.fromkeys(reading.metrics, reading))
        else:
            for name in reading.metrics:
                old = metrics.get(name)
                if old is None or ts >= old.ts:  # a late (replayed) reading never hides a newer value
                    metrics[name] = reading
        self.cursor += 1
        self.tail.append(TailItem(self.cursor, gateway, zone, reading))
        if self._event is not None:
            self._event.set()
            self._event = None

    # ------------------------------------------------------------ out (the API)
    def latest(self, gateway: str | None = None, zone: str | None = None) -> list[DeviceLatest]:
        return [d for _, d in sorted(self.devices.items())
                if (gateway is None or d.gateway == gateway) and (zone is None or d.zone == zone)]

    def air(self, zone: str | None = None) -> list[DeviceLatest]:
        return [d for d in self.latest(zone=zone) if any(m in d.metrics for m in PM_METRICS)]

    def since(self, after: int, *, gateway: str | None = None, limit: int = 1000) -> tuple[list[TailItem], int, int]:
        """Readings with cursor > ``after`` (optionally of one gateway), at most ``limit``.

        Returns (items, next cursor to pass as ``after``, readings missed because they left the buffer)."""
        first = self.tail[0].cursor if self.tail else self.cursor + 1
        if after > self.cursor:  # a cursor from before a hub restart: follow this hub from its oldest reading
            after = first - 1
        missed = max(0, first - after - 1) if after < first - 1 else 0
        start = max(0, after + 1 - first)
        items: list[TailItem] = []
        next_cursor = self.cursor
        for item in self._from(start):
            if gateway is not None and item.gateway != gateway:
                continue
            if len(items) >= limit:
                next_cursor = items[-1].cursor
                break
            items.append(item)
        return items, max(next_cursor, after), missed

    def last(self, n: int, *, gateway: str | None = None) -> int:
        """The cursor to pass as ``after`` so the next ``since`` returns the last ``n`` readings."""
        if n <= 0:
            return self.cursor
        seen = 0
        for item in reversed(self.tail):
            if gateway is None or item.gateway == gateway:
                seen += 1
                if seen == n:
                    return item.cursor - 1
        return self.tail[0].cursor - 1 if self.tail else self.cursor

    def _from(self, start: int) -> Iterator[TailItem]:
        if start == 0:
            return iter(self.tail)
        return itertools.islice(self.tail, start, None)

    async def wait(self, after: int, timeout_s: float) -> None:
        """Return once a reading with cursor > ``after`` exists, or after ``timeout_s``."""
        if self.cursor > after or timeout_s <= 0:
            return
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            pass
