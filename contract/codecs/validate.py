"""Input validation shared by device codecs and drivers (pure functions and small classes, no I/O).

- ``Counters``: named counters (bad frames, resyncs, rejected values) that every codec and validator
  bumps instead of raising; they go into the heartbeat's ``counters``.
- ``FrameStream``: feeds raw bytes through any sans-IO ``decode(buffer) -> (consumed, frame|None)``.
- ``RANGES`` / ``check_ranges``: physical range of each metric; out-of-range values are removed,
  counted and flagged ``out_of_range`` (never passed on, never silently dropped).
- ``StuckDetector``: flags ``stuck`` when a metric repeats the exact same value too many times.
- ``humidity_flag``: PM readings taken above 75 % RH are flagged ``high_humidity`` (optical PM
  sensors over-read in humid air; the value is kept, the flag tells the consumer).
- ``Validator``: applies all of the above to a ``contract.models.Reading``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from contract.models import Reading

F = TypeVar("F")

HIGH_HUMIDITY_RH = 75.0
FLAG_OUT_OF_RANGE = "out_of_range"
FLAG_STUCK = "stuck"
FLAG_HIGH_HUMIDITY = "high_humidity"
FLAG_WARMING_UP = "warming_up"


class Counters(Counter[str]):
    """Counts by reason (``bad_checksum``, ``resync_bytes``, ``out_of_range.pm2_5`` ...)."""

    def total_bad(self) -> int:
        return sum(v for k, v in self.items() if k != "frames")


class FrameStream(Generic[F]):
    """Byte-stream front end for a sans-IO decoder.

    ``decode(buffer, counters)`` returns ``(0, None)`` when it needs more bytes, ``(n, None)`` when it discarded
    ``n`` bytes (it has counted why) and ``(n, frame)`` for a frame. The buffer is bounded: bytes
    beyond ``max_buffer`` without a frame are dropped and counted as ``overflow_bytes``.
    """

    def __init__(self, decode: Callable[[bytes, Counters], tuple[int, F | None]], *, max_buffer: int = 4096,
                 counters: Counters | None = None) -> None:
        self._decode = decode
        self._buf = bytearray()
        self.max_buffer = max_buffer
        self.counters = counters if counters is not None else Counters()

    def feed(self, data: bytes) -> list[F]:
        self._buf += data
        frames: list[F] = []
        while self._buf:
            consumed, frame = self._decode(bytes(self._buf), self.counters)
            if consumed == 0:
                break
            del self._buf[:consumed]
            if frame is not None:
                frames.append(frame)
        if len(self._buf) > self.max_buffer:
            extra = len(self._buf) - self.max_buffer
            del self._buf[:extra]
            self.counters["overflow_bytes"] += extra
        return frames

    @property
    def pending(self) -> int:
        return len(self._buf)


@dataclass(frozen=True, slots=True)
class Range:
    lo: float
    hi: float
    unit: str


# Physical range per metric name (the sensor's specified range, not what is "normal").
RANGES: dict[str, Range] = {
    "pm1_0": Range(0.0, 1000.0, "ug/m3"),
    "pm2_5": Range(0.0, 1000.0, "ug/m3"),
    "pm10": Range(0.0, 2000.0, "ug/m3"),
    "temperature": Range(-40.0, 85.0, "degC"),
    "humidity": Range(0.0, 100.0, "%RH"),
    "pressure": Range(30000.0, 110000.0, "Pa"),
    "laeq": Range(20.0, 140.0, "dB(A)"),
    "lafmax": Range(20.0, 140.0, "dB(A)"),
    "la10": Range(20.0, 140.0, "dB(A)"),
    "la90": Range(20.0, 140.0, "dB(A)"),
}


def check_ranges(metrics: dict[str, float], counters: Counters | None = None,
                 ranges: dict[str, Range] = RANGES) -> tuple[dict[str, float], bool]:
    """Return (metrics that are finite and in range, whether anything was removed)."""
    good: dict[str, float] = {}
    removed = False
    for name, value in metrics.items():
        r = ranges.get(name)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or (
                r is not None and not r.lo <= value <= r.hi):
            removed = True
            if counters is not None:
                counters[f"out_of_range.{name}"] += 1
            continue
        good[name] = float(value)
    return good, removed


@dataclass
class StuckDetector:
    """A metric that repeats the exact same value ``repeats`` times in a row is stuck.

    Zero is excluded by default for PM (clean air does read 0.0 for long stretches).
    """

    repeats: int = 30
    ignore_values: frozenset[float] = frozenset({0.0})
    _last: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)

    def update(self, device: str, metric: str, value: float) -> bool:
        key = (device, metric)
        last = self._last.get(key)
        run = last[1] + 1 if last is not None and last[0] == value else 1
        self._last[key] = (value, run)
        return run >= self.repeats and value not in self.ignore_values


def humidity_flag(metrics: dict[str, float], rh: float | None) -> bool:
    """True when a PM reading was taken at relative humidity above 75 %."""
    has_pm = any(k.startswith("pm") for k in metrics)
    return has_pm and rh is not None and rh > HIGH_HUMIDITY_RH


class Validator:
    """Range checks, stuck detection and the humidity flag for one gateway's readings.

    ``latest_rh`` is the last good humidity seen from any climate sensor on the gateway (a BME280
    next to the dust sensor), or one passed in explicitly.
    """

    def __init__(self, *, stuck_repeats: int = 30, counters: Counters | None = None) -> None:
        self.counters = counters if counters is not None else Counters()
        self.stuck = StuckDetector(repeats=stuck_repeats)
        self.latest_rh: float | None = None

    def check(self, reading: Reading, *, rh: float | None = None) -> Reading | None:
        """Return the reading with bad values removed and flags added; None if nothing valid is left."""
        metrics, removed = check_ranges(reading.metrics, self.counters)
        flags = list(reading.flags)
        if removed:
            flags.append(FLAG_OUT_OF_RANGE)
        if "humidity" in metrics:
            self.latest_rh = metrics["humidity"]
        if any(self.stuck.update(reading.device, k, v) for k, v in metrics.items()):
            flags.append(FLAG_STUCK)
            self.counters["stuck"] += 1
        if humidity_flag(metrics, rh if rh is not None else self.latest_rh):
            flags.append(FLAG_HIGH_HUMIDITY)
            self.counters["high_humidity"] += 1
        if not metrics:
            self.counters["rejected_readings"] += 1
            return None
        flags = list(dict.fromkeys(flags))
        return reading.model_copy(update={"metrics": metrics, "flags": tuple(flags)})
