"""The hub's latest-state cache of telemetry: the newest value of every (gateway, device, metric), and a
bounded tail of recent readings with a cursor, for ``GET /api/v1/telemetry/latest``, ``/telemetry/tail``
and ``/air``. Fed by ``Ingest(on_reading=latest.on_reading)`` after dedup and range checks, so the cache
shows exactly what was written to the store. All in the hub's event loop; nothing here blocks or raises.

Cursors count readings from 1 since the hub started; a reader that falls more than ``tail_size`` readings
behind is told how many it ``missed`` (they are in the store, not in this short buffer).

Version 2 series come in through ``on_rows`` whole: the tail keeps the series as one chunk and builds a
``Reading`` for a row only when a reader asks for it, and the newest-value table gets the series' newest row.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from contract.codecs.telemetry import Rows, series_readings
from contract.models import CompactSeries, Reading
from hub.ingest.fastrows import FastRows

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


@dataclass(slots=True)
class _Chunk:
    """Consecutive readings of one gateway in the tail: cursors ``first + skip .. first + n - 1``."""

    first: int
    gateway: str
    zone: str | None
    n: int
    readings: list[Reading] | None = None  # None: built from series/rows on first use
    series: CompactSeries | None = None
    rows: Rows | FastRows | None = None
    skip: int = 0

    def reading(self, i: int) -> Reading:
        if self.readings is None:
            assert self.series is not None and self.rows is not None
            self.readings = series_readings(self.series, self.rows)
            self.series = self.rows = None
        return self.readings[i]


class _Tail:
    def __init__(self, cache: LatestCache) -> None:
        self._cache = cache

    def __len__(self) -> int:
        return self._cache._tail_n

    def __iter__(self) -> Iterator[TailItem]:
        return self._cache._after(-1, None)


class LatestCache:
    def __init__(self, *, tail_size: int = 50_000, clock: Callable[[], float] = time.time) -> None:
        self.devices: dict[tuple[str, str], DeviceLatest] = {}
        self._chunks: deque[_Chunk] = deque()
        self.tail_size = tail_size
        self._tail_n = 0
        self.cursor = 0
        self.clock = clock
        self._event: asyncio.Event | None = None

    @property
    def tail(self) -> _Tail:
        """The buffered readings, oldest first: ``len()`` counts readings (bounded by ``tail_size``)."""
        return _Tail(self)

    # ------------------------------------------------------------ in (the ingest pipeline)
    def on_reading(self, gateway: str, zone: str | None, reading: Reading) -> None:
        self._newest(gateway, zone, reading)
        self._append(_Chunk(self.cursor + 1, gateway, zone, 1, [reading]))

    def on_rows(self, gateway: str, zone: str | None, series: CompactSeries, rows: Rows | FastRows) -> None:
        """A whole version 2 series (already range-checked): its newest row updates the table, all rows go to
        the tail as one chunk."""
        newest = Reading.model_construct(device=series.device, kind=series.kind, ts=rows.bounds[-1][1] / 1000,
                                         flags=series.flags,
                                         metrics=dict(zip(series.fields, rows.newest_values(), strict=True)))
        self._newest(gateway, zone, newest)
        self._append(_Chunk(self.cursor + 1, gateway, zone, rows.n, None, series, rows))

    def _append(self, chunk: _Chunk) -> None:
        self._chunks.append(chunk)
        self.cursor += chunk.n
        self._tail_n += chunk.n
        while self._tail_n > self.tail_size:
            head = self._chunks[0]
            extra = self._tail_n - self.tail_size
            if head.n - head.skip <= extra:
                self._chunks.popleft()
                self._tail_n -= head.n - head.skip
            else:
                head.skip += extra
                self._tail_n -= extra
        if self._event is not None:
            self._event.set()
            self._event = None

    def _newest(self, gateway: str, zone: str | None, reading: Reading) -> None:
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

    # ------------------------------------------------------------ out (the API)
    def latest(self, gateway: str | None = None, zone: str | None = None) -> list[DeviceLatest]:
        return [d for _, d in sorted(self.devices.items())
                if (gateway is None or d.gateway == gateway) and (zone is None or d.zone == zone)]

    def air(self, zone: str | None = None) -> list[DeviceLatest]:
        return [d for d in self.latest(zone=zone) if any(m in d.metrics for m in PM_METRICS)]

    def since(self, after: int, *, gateway: str | None = None, limit: int = 1000) -> tuple[list[TailItem], int, int]:
        """Readings with cursor > ``after`` (optionally of one gateway), at most ``limit``.

        Returns (items, next cursor to pass as ``after``, readings missed because they left the buffer)."""
        first = self._chunks[0].first + self._chunks[0].skip if self._chunks else self.cursor + 1
        if after > self.cursor:  # a cursor from before a hub restart: follow this hub from its oldest reading
            after = first - 1
        missed = max(0, first - after - 1) if after < first - 1 else 0
        items: list[TailItem] = []
        next_cursor = self.cursor
        for item in self._after(after, gateway):
            if len(items) >= limit:
                next_cursor = items[-1].cursor
                break
            items.append(item)
        return items, max(next_cursor, after), missed

    def _after(self, after: int, gateway: str | None) -> Iterator[TailItem]:
        for chunk in self._chunks:
            if chunk.first + chunk.n - 1 <= after or (gateway is not None and chunk.gateway != gateway):
                continue
            for i in range(max(chunk.skip, after + 1 - chunk.first), chunk.n):
                yield TailItem(chunk.first + i, chunk.gateway, chunk.zone, chunk.reading(i))

    def last(self, n: int, *, gateway: str | None = None) -> int:
        """The cursor to pass as ``after`` so the next ``since`` returns the last ``n`` readings."""
        if n <= 0:
            return self.cursor
        seen = 0
        for chunk in reversed(self._chunks):
            if gateway is None or chunk.gateway == gateway:
                have = chunk.n - chunk.skip
                if seen + have >= n:
                    return chunk.first + chunk.n - (n - seen) - 1
                seen += have
        return self._chunks[0].first + self._chunks[0].skip - 1 if self._chunks else self.cursor

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
