"""Pass-by event detector on the 10 Hz LAF frames: threshold with hysteresis, minimum and maximum duration.

Levels are normalised to the reference distance (7.5 m) from the configured distance between the
microphone and the lane, as for a point source in free field: ``L_ref = L + 20 log10(d / d_ref)`` (with the
microphone's height configured, ``d`` and ``d_ref`` are slant distances from the tailpipe).

An event opens on the first frame whose normalised LAFmax reaches ``candidate_db`` and closes on the first
frame below ``candidate_db - hysteresis_db``. A pass-by peaks once: when the level falls ``split_db`` below
the event's peak and then rises ``split_db`` above that dip, the event is split at the dip (two vehicles,
or a vehicle and a siren, whose sounds overlap above the threshold). Events shorter than ``min_duration_s`` are counted
(``short``) and not reported. Events longer than ``max_duration_s`` are reported with ``too_long`` set (a
pass-by does not last that long: such an event may never become an enforcement case). An event still open
after ``hard_limit_s`` is closed there and a new one opens, which bounds memory.

An event longer than ``max_duration_s`` (dense traffic: a queue of vehicles keeps the level above the
threshold) is first cut into pass-bys: at the lowest level between every two maxima that stand at least
``long_split_db`` above the level between them (scipy's peak prominence), so a loud vehicle in a queue gets
its own event, whose LAFmax is its own. A piece still longer than ``max_duration_s`` whose maximum stands out
(one vehicle far louder than a queue that never dips 4 dB) and reaches ``enforcement_db + uncertainty_db`` is
cut once more around that maximum: the span
where the level stays within ``down_db`` of it (or, if that is still too long, within half the height of the
maximum over the piece's median level, if that rise is >= ``long_split_db``) is the vehicle's pass-by. Only pieces still longer than
``max_duration_s`` keep ``too_long``, and
only the last piece of an event closed at ``hard_limit_s`` is ``cut``, and only while its level there is within
``down_db`` of its maximum: 10 dB down, a pass-by's maximum is behind it. A cut piece's rest opens the next
event, which holds the pass-by's maximum if it is still to come. The last piece of an event still open when the
input ends (``flush``) is ``ended`` instead, on the same condition: nothing follows it, so its maximum is the
most the vehicle was heard to make, a lower bound of its LAFmax (thirtieth session; it was ``cut`` before).

Touching pieces (a *chain*: no frame under the threshold between them, or at most ``bridge_s`` of them: a gear
change takes the throttle off for well under a second, and the level of an approaching vehicle can drop under
the threshold while it does) are handed over together when the chain ends (the level stays under the threshold
for longer than ``bridge_s``, the hard limit, or once the chain spans ``hard_limit_s``: bounded latency and
memory), each carrying its chain's number (``RawEvent.chain``), so the pipeline can tell a piece that is a
louder neighbour's approach or departure (``gateway.noise.chains``: one pass-by, one event).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
from scipy.signal import find_peaks

from gateway.noise.dsp import FRAME_HZ
from gateway.noise.errors import ConfigError
from gateway.noise.uncertainty import budget, point_source_db


@dataclass(frozen=True)
class DetectorConfig:
    distance_m: float = 7.5  # microphone to the lane's centre
    reference_m: float = 7.5
    candidate_db: float = 85.0  # at the reference distance
    enforcement_db: float = 95.0  # at the reference distance, after subtracting uncertainty_db
    uncertainty_db: float = 2.0  # stated expanded uncertainty; the margin is max(this, the budget's U)
    lane_half_width_m: float = 0.8  # the vehicle is anywhere within +- this of the lane centre (budget)
    meter_class: int = 2  # IEC 61672-1 tolerance class the microphone + meter is designed to (budget)
    hysteresis_db: float = 3.0
    min_duration_s: float = 0.3
    max_duration_s: float = 20.0
    hard_limit_s: float = 40.0
    split_db: float = 8.0  # a dip this deep between two rises splits an event (one peak per pass-by)
    long_split_db: float = 4.0  # ... and this deep, in an event longer than max_duration_s (a queue)
    down_db: float = 10.0  # an event cut while its level is this far under its maximum is complete (not cut)
    mic_height_m: float | None = None  # microphone above the road; None: horizontal distances only
    source_height_m: float = 0.5  # a tailpipe's height above the road
    skirt_speed_mps: float = 3.0  # chains: a piece under the envelope of a louder neighbour passing this slowly is its skirt
    exhaust_blips: bool = True  # chains: a quieter exhaust piece touching a louder exhaust piece is its blip or flank
    bridge_s: float = 1.0  # chains: a piece opening this soon after the last one closed joins its chain (a gear change)

    def __post_init__(self) -> None:
        checks = [
            (0.5 <= self.distance_m <= 100, f"distance_m {self.distance_m}: expected 0.5..100 m"),
            (0.5 <= self.reference_m <= 100, f"reference_m {self.reference_m}: expected 0.5..100 m"),
            (30 <= self.candidate_db <= 140, f"candidate_db {self.candidate_db}: expected 30..140 dB"),
            (self.enforcement_db >= self.candidate_db, "enforcement_db must be >= candidate_db"),
            (0 <= self.uncertainty_db <= 10, f"uncertainty_db {self.uncertainty_db}: expected 0..10 dB"),
            (0 <= self.hysteresis_db <= 20, f"hysteresis_db {self.hysteresis_db}: expected 0..20 dB"),
            (0 < self.min_duration_s < self.max_duration_s, "need 0 < min_duration_s < max_duration_s"),
            (self.max_duration_s <= self.hard_limit_s <= 60, "need max_duration_s <= hard_limit_s <= 60 s"),
            (3 <= self.split_db <= 40, f"split_db {self.split_db}: expected 3..40 dB"),
            (2 <= self.long_split_db <= self.split_db, "long_split_db: expected 2 dB..split_db"),
            (0 <= self.lane_half_width_m < self.distance_m, "need 0 <= lane_half_width_m < distance_m"),
            (self.meter_class in (1, 2), f"meter_class {self.meter_class}: expected 1 or 2"),
            (self.mic_height_m is None or 0.0 <= self.mic_height_m <= 30.0, "mic_height_m: expected 0..30 m"),
            (0.0 <= self.source_height_m <= 5.0, "source_height_m: expected 0..5 m"),
            (1.0 <= self.skirt_speed_mps <= 60.0, "skirt_speed_mps: expected 1..60 m/s"),
            (0.0 <= self.bridge_s <= 5.0, "bridge_s: expected 0..5 s"),
        ]
        for ok, msg in checks:
            if not ok or any(isinstance(v, float) and not math.isfinite(v) for v in self.__dict__.values()):
                raise ConfigError(msg if not ok else "detector settings must be finite numbers")

    @property
    def margin_db(self) -> float:
        """The enforcement margin: the larger of the stated uncertainty and the budget's expanded one."""
        return max(self.uncertainty_db, self.budget.expanded)

    @property
    def budget(self):
        return budget(self.distance_m, lane_half_width_m=self.lane_half_width_m, meter_class=self.meter_class,
                      reference_m=self.reference_m, dh_m=self.dh_m)

    @property
    def dh_m(self) -> float:
        """The microphone's height over a source ``source_height_m`` above the road (0 without ``mic_height_m``:
        horizontal distances)."""
        return 0.0 if self.mic_height_m is None else self.mic_height_m - self.source_height_m

    @property
    def distance_correction_db(self) -> float:
        """``20 lg(r / r_ref)``: horizontal distances, or, with ``mic_height_m`` set, the slant distances from a
        source ``source_height_m`` above the road to the microphone at its height, at ``distance_m`` and at
        ``reference_m`` (the measurand is then the level 7.5 m from the lane at the microphone's own height; a
        pole-mounted microphone 4 m up, 3 m from the lane, is 4.7 m from the exhaust, not 3 m)."""
        return point_source_db(self.distance_m, self.reference_m, self.dh_m)

    @property
    def slant_m(self) -> float:
        """The distance from a source in the lane to the microphone at its closest (with its height if set)."""
        return math.hypot(self.distance_m, self.dh_m)

    @property
    def open_mic_db(self) -> float:
        """The LAFmax at the microphone at which an event opens (``candidate_db`` at the reference distance)."""
        return self.candidate_db - self.distance_correction_db

    @property
    def bridge_frames(self) -> int:
        """``bridge_s`` in 10 Hz frames: a piece opening fewer frames than this after a chain closed joins it."""
        return round(self.bridge_s * FRAME_HZ)


@dataclass(frozen=True)
class RawEvent:
    start: int  # first frame index (inclusive)
    end: int  # frame index after the last frame (exclusive)
    peak: int  # frame index of the maximum LAF
    lafmax: float  # measured at the microphone, dB
    too_long: bool
    cut: bool  # closed at hard_limit_s while still above threshold (the rest is the next event's)
    parent: tuple[int, int] | None = None  # the long piece this one was cut from around its maximum (frames)
    chain: int = 0  # pieces with the same number touch (their chain was handed over together)
    ended: bool = False  # still loud when the input ended (``flush``): its maximum is the most that was heard

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / FRAME_HZ


class PassByDetector:
    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        c = self.config
        self._corr = c.distance_correction_db
        self._on = c.open_mic_db  # thresholds expressed at the microphone
        self._off = self._on - c.hysteresis_db
        self._case = c.enforcement_db + c.uncertainty_db - self._corr  # a level that could be a case, at the mic
        self._min = max(1, round(c.min_duration_s * FRAME_HZ))
        self._max = round(c.max_duration_s * FRAME_HZ)
        self._hard = round(c.hard_limit_s * FRAME_HZ)
        self._bridge = c.bridge_frames
        self._held_until: int | None = None  # a closed chain waits for a piece opening before this frame
        self._open: list[float] | None = None  # [start, peak, lafmax]
        self._levels: list[float] = []  # the open event's frame levels (for cutting a long one into pass-bys)
        self._chain: list[RawEvent] = []  # closed pieces the open event touches (settled when the chain ends)
        self._chains = 0
        self._last_index = -1
        self.counters: Counter[str] = Counter()

    def feed(self, frames: np.ndarray) -> list[RawEvent]:
        out: list[RawEvent] = []
        if frames.size == 0:
            return out
        lv = frames["lafmax"]
        idx = frames["index"]
        if self._open is None and float(lv.max()) < self._on:
            self._last_index = int(idx[-1])
            self._expire(self._last_index, out)
            return out
        for i, level in zip(idx.tolist(), lv.tolist(), strict=True):
            ev = self._open
            if ev is None:
                if level >= self._on:
                    self._held_until = None
                    self._open = [i, i, level, i, level, i, level]  # start, peak, max, dip, min, post, max
                    self._levels = [level]
                else:
                    self._expire(i, out)
                continue
            self._levels.append(level)
            if level < ev[4] and ev[2] - level > 0:
                ev[3], ev[4] = i, level  # deepest dip since the peak
                ev[5], ev[6] = i, level  # highest point after that dip
            elif level > ev[6]:
                ev[5], ev[6] = i, level
            if level > ev[2] and ev[2] - ev[4] < self.config.split_db:
                ev[1], ev[2] = i, level
                ev[3], ev[4], ev[5], ev[6] = i, level, i, level
            if level < self._off:
                self._close(i, cut=False, out=out)
            elif ev[2] - ev[4] >= self.config.split_db and ev[6] - ev[4] >= self.config.split_db:
                dip, post_i, post_l = ev[3], ev[5], ev[6]
                rest = self._levels[dip - int(ev[0]):]
                self._close(dip, cut=False, out=out, more=True)
                self.counters["splits"] += 1
                self._open = [dip, post_i, post_l, post_i, post_l, post_i, post_l]
                self._levels = rest
            elif i + 1 - ev[0] >= self._hard:
                self._close(i + 1, cut=True, out=out)
            if self._chain and i + 1 - self._chain[0].start >= self._hard:
                out.extend(self._settle())  # held pieces wait at most hard_limit_s (the audio ring keeps them)
        self._last_index = int(idx[-1])
        return out

    def flush(self) -> list[RawEvent]:
        """Close an open event at the end of the stream."""
        out: list[RawEvent] = []
        if self._open is not None:
            self._close(self._last_index + 1, cut=False, out=out, ended=True)
        if self._chain:
            out.extend(self._settle())  # a chain held for bridge_s
        return out

    def _expire(self, i: int, out: list[RawEvent]) -> None:
        """Hand over a held chain once frame ``i``, under the threshold, was the last of its ``bridge_s``."""
        if self._held_until is not None and i + 1 >= self._held_until:
            out.extend(self._settle())

    def _close(self, end: int, *, cut: bool, out: list[RawEvent], more: bool = False, ended: bool = False) -> None:
        """Close the open event into pieces on the chain; settle the chain unless the next piece touches it
        (``more``: a split at a dip), nor while a piece may still open within ``bridge_s`` (a closed chain is
        held until then; not after the hard limit)."""
        self._close_pieces(end, cut=cut, ended=ended)
        if more:
            return
        if self._bridge and not cut and self._chain:
            self._held_until = end + self._bridge
        else:
            out.extend(self._settle())

    def _close_pieces(self, end: int, *, cut: bool, ended: bool = False) -> None:
        assert self._open is not None
        start, peak, lafmax = self._open[:3]
        start = int(start)
        self._open = None
        levels, self._levels = self._levels[: end - start], []
        n = end - start
        if n < self._min:
            self.counters["short"] += 1
            return
        pieces: list[tuple] = [(start, end, int(peak), float(lafmax))]
        if n > self._max and len(levels) == n:
            pieces = self._pieces(start, np.asarray(levels))
            self.counters["long_pieces"] += len(pieces) - 1
        for k, (a, b, p, lv, *parent) in enumerate(pieces):
            too_long = b - a > self._max
            last = k == len(pieces) - 1
            done = len(levels) == n and levels[-1] <= lv - self.config.down_db  # its maximum is behind it
            if cut and last and done:
                self.counters["cut_after_max"] += 1
            self._chain.append(RawEvent(a, b, p, lv, too_long, cut and last and not done, parent[0] if parent else None,
                                        ended=ended and last and not done))

    def _settle(self) -> list[RawEvent]:
        """Hand over the chain's pieces, numbered as one chain; counts ``events`` and ``too_long``."""
        chain, self._chain = self._chain, []
        self._held_until = None
        self._chains += 1
        self.counters["events"] += len(chain)
        self.counters["too_long"] += sum(e.too_long for e in chain)
        return [replace(e, chain=self._chains) for e in chain]

    def _pieces(self, start: int, lv: np.ndarray) -> list[tuple[int, int, int, float]]:
        """A long event cut at the lowest frame between maxima of >= long_split_db prominence."""
        peaks, _ = find_peaks(np.concatenate([[-np.inf], lv, [-np.inf]]), prominence=self.config.long_split_db)
        peaks = peaks - 1
        cuts = [0] + [int(p0 + np.argmin(lv[p0:p1])) for p0, p1 in zip(peaks[:-1], peaks[1:], strict=True)] + [lv.size]
        spans: list[tuple[int, int, tuple[int, int] | None]] = []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            around = self._around_peak(lv, a, b) if b - a > self._max else [(a, b)]
            parent = (start + a, start + b) if len(around) > 1 else None
            spans += [(x, y, parent) for x, y in around]
        out = []
        for a, b, parent in spans:
            if b - a < self._min:
                continue
            p = a + int(np.argmax(lv[a:b]))
            out.append((start + a, start + b, start + p, float(lv[p]), parent))
        return out or [(start, start + lv.size, start + int(np.argmax(lv)), float(lv.max()))]

    def _around_peak(self, lv: np.ndarray, a: int, b: int) -> list[tuple[int, int]]:
        """A piece still longer than max_duration_s (one vehicle far louder than a queue without dips, or a
        queue behind it) whose maximum reaches enforcement_db + uncertainty_db (at 7.5 m; quieter ones could
        never be a case, so they stay one too_long event and cost no more): its maximum's pass-by is the span around it where the level stays within
        ``down_db`` of the maximum, or within half its rise over the piece's median level (a rise of at least
        long_split_db);
        if that is a pass-by's length, it becomes its own piece and the flanks
        before and after it others (whose maxima then lie at their edges: ``edge_peak``). Each keeps the span
        of the piece it was cut from (``RawEvent.parent``): a siren heard anywhere in it still blocks the case."""
        c = self.config
        p = a + int(np.argmax(lv[a:b]))
        if lv[p] < self._case:  # only a maximum that could make a case is worth its own event (and its cost)
            return [(a, b)]
        rise = float(lv[p] - np.median(lv[a:b]))  # how far the maximum stands above the piece's typical level
        for drop in (c.down_db, rise / 2):
            if rise < c.long_split_db:  # nothing stands out of the piece: a steady sound, not a pass-by
                break
            low = lv[a:b] < lv[p] - drop
            before = np.flatnonzero(low[: p - a])
            after = np.flatnonzero(low[p - a:])
            s0 = a + (int(before[-1]) + 1 if before.size else 0)
            s1 = p + (int(after[0]) if after.size else b - p)
            if s1 - s0 <= self._max and (s0, s1) != (a, b):
                self.counters["peak_pieces"] += 1
                return [(x, y) for x, y in ((a, s0), (s0, s1), (s1, b)) if y > x]
        return [(a, b)]
