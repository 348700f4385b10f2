"""Siren suppression from two independent signals.

1. The hub's retained public zone state (``dozor/v1/zone/{zone}/state``): while a zone that this gateway
   belongs to is ``active`` with a sounding signal (anything but ``silent-test``), sirens are sounding.
   ``grace_s`` after it ends still counts (rotor sirens run down).
2. A local tonal detector on the 8 Hz spectrogram. Which frames are tonal (a narrow, prominent peak in
   250-3000 Hz that is no engine order, comb root or firing line) is ``gateway.noise.tonal_frames``'s test.
   Tonal frames form a *run* only with continuity of frequency (the peak moves <= ``max_jump_oct`` between tonal
   frames, or returns to within ``alt_oct`` of the run's previous tone: a two-tone siren whose tones, or the
   harmonics the peak picks, lie more than an octave apart) and gaps of at most ``gap_s`` (limited bridging); a
   run counts once it holds ``min_frames`` tonal frames, and ``engine_ratio`` of them per frame whose peak near
   its tone was excused (in the run or ``engine_before_s`` before it: an engine's line flickers between excused
   and not). When at least 60 % of the last ``window_s`` seconds were frames of runs, a siren is sounding until
   fewer than 20 % are; the interval is backdated to ``lead_s`` before the run start (a rotor siren's run-up is
   not yet tonal) and held ``hold_s`` after the last tonal frame. An event the classifier calls a siren opens
   such an interval too (``siren_event``), so a siren masked by passing traffic stays known. ``run_frames``
   counts the frames in runs (the false-alarm measure of ``bench.noise_accuracy``: <= 1 % of frames on
   siren-free scenes). A run whose tone steps back to the pitch it held before ``calls`` times (each held
   ``call_frames``) *calls*, like a hi-lo or two-tone siren; its start is kept in ``calling``, and a confident
   exhaust's span does not excuse it for ``siren_nearby`` (``SirenQueries``).

Every tonal frame (on its own or held) also records the A-weighted mean square of its tone: the bins
around the tone's frequency and its first ``tone_harmonics`` multiples (``tone_log``). That is how much the
tone could add to a level, so a query can ask whether the tone *matters* for an event: a run or interval
counts against an event only where a tone of it was heard inside the asked window at no less than
``floor_ms`` (the pipeline passes the event's LAFmax minus ``TONE_MATTERS_DB``). A siren that ended seconds
before a pass-by, or is far away and 20 dB under it, neither suppresses nor blocks it; intervals the
classifier opened (``siren_event``; no tone need be heard) count within their own span only.

An event that overlaps either kind of interval, or that the classifier calls a siren, is flagged
``suppressed`` with its reasons. It is kept and reported, never dropped, and can never become an
enforcement case.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from contract.models import Signal, ZoneState, ZoneStatus
from gateway.noise.siren_queries import SirenQueries
from gateway.noise.spectrum import median1
from gateway.noise.tonal_frames import edges, engine_line, tonal_frames
from gateway.noise.weighting import a_weighting_db

SILENT = {Signal.SILENT_TEST}


@dataclass(frozen=True)
class SuppressionConfig:
    window_s: float = 10.0
    on_fraction: float = 0.6
    off_fraction: float = 0.2
    hold_s: float = 2.0
    gap_s: float = 0.75  # a run of tonal frames survives gaps this long, no longer (limited bridging)
    lead_s: float = 2.0  # intervals start this much before the first tonal frame (a rotor siren's run-up)
    min_run_s: float = 2.0  # a tonal run this long is remembered: not enough to suppress, enough to block
    #                         enforcement of an event next to it (a siren starting, masked or far away)
    grace_s: float = 3.0
    min_prominence_db: float = 18.0
    min_concentration: float = 0.3
    narrow_bins: int = 4  # a tonal peak drops min_drop_db within this many bins on both sides
    min_drop_db: float = 12.0
    max_jump_oct: float = 1.0  # continuity of frequency between consecutive tonal frames of a run
    alt_oct: float = 0.1  # ... or a return to within this of the run's previous tone (two tones > 1 octave apart)
    min_frames: int = 6  # tonal frames before a run counts (0.75 s at 8 Hz)
    engine_oct: float = 0.25  # a narrow peak this close to the run's tone that *is* an engine order ...
    engine_ratio: float = 3.0  # ... : the run counts only with this many tonal frames per such excused frame
    engine_before_s: float = 2.0  # excused frames this long before a run's first tonal frame count against it too
    hold_prominence_db: float = 8.0  # a counted run's own tone, still narrow, keeps it going at this prominence
    hold_max_s: float = 6.0  # ... for at most this long after the last frame that was tonal on its own
    tone_harmonics: int = 6  # a tone's level: its bins and those of this many multiples (A-weighted)
    tone_bins: int = 2  # +- bins around each (the Hann main lobe and a slow sweep within a frame)
    tone_log_s: float = 90.0  # tone levels are kept this long (an event is finished <= 20 s after it ends)
    calls: int = 4  # a run whose tone steps back to its other tone this often, each held >= call_frames, calls
    call_frames: int = 2  # (a hi-lo or two-tone siren): a confident exhaust's span does not excuse it
    engine_max_hz: float = 700.0  # a comb root or a firing line above this is no engine's (a rotor siren's tone)


class SirenSuppressor(SirenQueries):
    """Keeps intervals (stream seconds) during which a siren was sounding, from both signals."""

    def __init__(self, freqs: np.ndarray, frame_hz: float, config: SuppressionConfig | None = None,
                 *, t0: float = 0.0, zones: set[str] | None = None) -> None:
        self.config = config or SuppressionConfig()
        self.t0 = t0  # epoch seconds of stream time 0, to map zone-state timestamps
        self.zones = zones  # None = every zone counts
        self.frame_hz = frame_hz
        self._band = (freqs >= 250) & (freqs <= 3000)
        self._ref = (freqs >= 150) & (freqs <= 5000)
        n = max(1, round(self.config.window_s * frame_hz))
        self._hist: deque[bool] = deque(maxlen=n)  # frame belongs to a (counted) run
        self._hist_tonal: deque[bool] = deque(maxlen=n)
        self._df = float(freqs[1] - freqs[0])
        self._sband: np.ndarray | None = None
        self._sref: np.ndarray | None = None
        self._sdf = 0.0
        self._run_f = 1.0
        self._alt_f = 1.0  # the run's other tone (two-tone and hi-lo sirens alternate between two)
        self._steps = 0  # the current run's returns to its other tone after holding one (``calls``)
        self._on_tone = 0  # tonal frames since the run's tone last stepped
        self.calling: set[float] = set()  # starts of the intervals and runs whose tone called (``calls``)
        self._last_full = -1e9
        self._run_n = 0
        self._run_x = 0  # frames of the current run whose tone was excused as an engine order (before it counted)
        self._excused: deque[tuple[float, float]] = deque(maxlen=1 + round(self.config.engine_before_s * frame_hz))
        self._counted = False  # the current run counts (min_frames, and engine_ratio tonal frames per excused one)
        self.frames_seen = 0
        self.run_frames = 0
        self._run_start: float | None = None  # first tonal frame of the current run
        self._active_since: float | None = None
        self._last_tonal = -1e9
        self._last_run_t = -1e9  # last frame of a counted run (what keeps a switched-on interval open)
        self._min_end = -1e9  # a classifier-called siren holds its interval open at least this long
        self._run_id = 0  # every run of tonal frames gets a number; its frames' tones count once it counts
        self._counted_ids: set[int] = set()  # runs that counted, pruned to those still in the tone log
        self._counted_version = 0
        self.local_intervals: list[list[float]] = []
        self.tonal_runs: list[list[float]] = []
        self.zone_intervals: list[list[float]] = []  # [start, end + grace_s]
        self._zone_ends: list[float] = []  # ... and each one's end without the grace (inf while sounding)
        self._zone_versions: dict[str, int] = {}
        self._zone_open: dict[str, float] = {}
        self.tonal_frames = 0
        self.tone_log: deque[tuple[float, float]] = deque(maxlen=max(1, round(self.config.tone_log_s * frame_hz)))
        self.tone_run: deque[int] = deque(maxlen=self.tone_log.maxlen)  # the run each logged tone belongs to
        self._edges: dict[int, tuple[int, int, int, int]] = {}  # spectrum size -> band and ref edges
        self._tone_arr: tuple | None = None  # (key, times, mean squares): tone_log as arrays for queries
        self.event_spans: list[tuple[float, float]] = []  # events the classifier called a siren
        self._aw2 = 10 ** (a_weighting_db(np.maximum(freqs, 1.0)) / 10)
        self._saw2: np.ndarray | None = None

    # ------------------------------------------------------------ hub zone state
    def zone_state(self, state: ZoneState) -> None:
        """Apply a retained zone state (already decoded and validated by the MQTT layer)."""
        if self.zones is not None and state.zone not in self.zones:
            return
        if state.version < self._zone_versions.get(state.zone, -1):
            return
        self._zone_versions[state.zone] = state.version
        t = state.ts - self.t0
        sounding = state.status is ZoneStatus.ACTIVE and state.signal not in SILENT
        if sounding and state.zone not in self._zone_open:
            self._zone_open[state.zone] = t
            self.zone_intervals.append([t, float("inf")])
            self._zone_ends.append(float("inf"))
        elif not sounding and state.zone in self._zone_open:
            start = self._zone_open.pop(state.zone)
            for i, iv in enumerate(self.zone_intervals):
                if iv[0] == start and iv[1] == float("inf"):
                    iv[1] = t + self.config.grace_s
                    self._zone_ends[i] = t

    def add_zone_interval(self, start: float, end: float) -> None:
        """Offline analysis: a known interval (stream seconds) when the hub said sirens were sounding."""
        self.zone_intervals.append([start, end + self.config.grace_s])
        self._zone_ends.append(end)

    # ------------------------------------------------------------ local tonal detector
    def _tonal(self, power: np.ndarray, band: np.ndarray, ref: np.ndarray, w: int,
               prom_db: float, resolved: bool | np.ndarray = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``tonal_frames.tonal_frames`` on the long (``band`` of the 8 Hz spectrogram) or the short spectrum."""
        c = self.config
        key = band.size
        if key not in self._edges:  # the long and the short spectrum: one pair of masks each
            self._edges[key] = edges(band, ref)
        df = float(self._df if power.shape[1] == self._band.size else self._sdf)
        return tonal_frames(power, self._edges[key], df, w=w, prom_db=prom_db, drop_db=c.min_drop_db,
                            min_concentration=c.min_concentration, resolved=resolved, engine_max_hz=c.engine_max_hz)

    def feed(self, index: np.ndarray, power: np.ndarray, short: np.ndarray | None = None) -> None:
        if index.size == 0:
            return
        c = self.config
        tonal, pk, excused = self._tonal(power, self._band, self._ref, c.narrow_bins, c.min_prominence_db)
        freq = pk * self._df
        exc_f = np.where(excused, freq, 0.0)
        if short is not None:
            if self._sband is None:
                fs_ = np.arange(short.shape[1]) * self._df * (power.shape[1] - 1) / (short.shape[1] - 1)
                self._sband = (fs_ >= 250) & (fs_ <= 3000)
                self._sref = (fs_ >= 150) & (fs_ <= 5000)
                self._sdf = float(fs_[1])
                self._saw2 = 10 ** (a_weighting_db(np.maximum(fs_, 1.0)) / 10)
            ts_, spk, sx = self._tonal(short, self._sband, self._sref, 5, c.min_prominence_db,
                                       resolved=~(tonal | excused))  # no narrow line in the long spectrum
            freq = np.where(tonal, freq, spk * self._sdf)
            exc_f = np.where(excused | ~sx, exc_f, spk * self._sdf)
            via_short = ts_ & ~tonal
            tonal = tonal | ts_
        else:
            via_short = np.zeros(tonal.size, dtype=bool)
        self.tonal_frames += int(tonal.sum())
        for j, (i, is_tonal, f, fx) in enumerate(zip(index.tolist(), tonal.tolist(), freq.tolist(), exc_f.tolist(),
                                                    strict=True)):
            t = (i + 1) / self.frame_hz
            full = is_tonal
            self.frames_seen += 1
            in_run = False
            if (not is_tonal and not self._counted and fx > 0 and self._run_start is not None
                    and abs(np.log2(fx / self._run_f)) <= c.engine_oct):
                self._run_x += 1  # the run's tone is, in this frame, an engine order (an engine's flickering line)
            if not is_tonal and fx > 0:
                self._excused.append((t, fx))
            if (not is_tonal and self._counted  # a counted run: follow its tone through masking
                    and t - self._last_full <= c.hold_max_s):
                held = self._held(power[j], self._run_f)
                if held is not None:
                    is_tonal, f = True, held
            if is_tonal:
                if via_short[j] and short is not None and self._saw2 is not None:
                    ms = self._tone_ms(short[j], f / self._sdf, self._saw2)
                else:
                    ms = self._tone_ms(power[j], f / self._df, self._aw2)
                near = self._run_start is not None and t - self._last_tonal <= c.gap_s + 1e-9
                jump = abs(np.log2(f / self._run_f))
                back = near and abs(np.log2(f / self._alt_f)) <= c.alt_oct  # a two-tone's other tone, again
                if not (near and jump <= c.max_jump_oct) and not back:
                    self._alt_f = self._run_f
                    if self._active_since is None:
                        self._close_run()
                        self._run_start = t - 1 / self.frame_hz
                    self._run_n, self._counted = 0, False  # excused frames just before, on its tone, count
                    self._steps = self._on_tone = 0
                    tail = (self._run_id in self._counted_ids and t - self._last_tonal <= c.hold_s + 1e-9
                            and abs(np.log2(f / self._run_f)) <= c.max_jump_oct)
                    self._run_id += 1
                    if tail:  # a counted run's tone again, after masking broke it off for <= hold_s: its tail
                        self._counted_ids.add(self._run_id)
                    self._run_x = sum(1 for tx, fx_ in self._excused if t - tx <= c.engine_before_s + 1e-9
                                      and abs(np.log2(fx_ / f)) <= c.engine_oct)
                elif jump > c.alt_oct:
                    self._steps += back and self._on_tone >= c.call_frames
                    self._alt_f = self._run_f
                    self._on_tone = 0
                    if self._steps >= c.calls and self._run_start is not None:
                        if len(self.calling) > 64:  # bounded: calls older than the tone log are asked no more
                            self.calling = {k for k in self.calling if k >= t - c.tone_log_s}
                        self.calling.add(self._run_start - c.lead_s)  # the key of its interval and its run
                self._on_tone += 1
                self._run_f = f
                self._run_n += 1
                self.tone_log.append((t, ms))
                self.tone_run.append(self._run_id)
                self._last_tonal = t
                if full:
                    self._last_full = t
                if (not self._counted and self._run_n >= c.min_frames
                        and self._run_n >= c.engine_ratio * self._run_x):  # the run now counts: so do its earlier frames
                    self._counted = True
                    self._count_run_and_onset()
                    for k in range(1, min(self._run_n, len(self._hist) + 1)):
                        if self._hist[-k] is False and self._hist_tonal[-k]:
                            self._hist[-k] = True
                            self.run_frames += 1
                in_run = self._counted
            elif self._run_start is not None and t - self._last_tonal > c.gap_s and self._active_since is None:
                self._close_run()
            if in_run:
                self.run_frames += 1
                self._last_run_t = t
            self._hist.append(in_run)
            self._hist_tonal.append(bool(is_tonal))
            frac = sum(self._hist) / self._hist.maxlen if self._hist.maxlen else 0.0
            if self._active_since is None:
                if frac >= c.on_fraction and self._run_start is not None:
                    self._active_since = self._run_start - c.lead_s
                    self.local_intervals.append([self._active_since, float("inf")])
            elif frac < c.off_fraction and t - self._last_run_t > c.hold_s and t > self._min_end:
                # tonal frames that form no counted run (an engine's orders under a passing vehicle) do not
                # keep a siren's interval open: it ends hold_s after the siren's own run was last heard
                self.local_intervals[-1][1] = max(self._last_run_t + c.hold_s, self._min_end)
                self._active_since = None
                self._run_start = None
                self._run_n = self._run_x = 0
                self._counted = False

    def _count_run_and_onset(self) -> None:
        """The current run counts, and so do the tonal frames of shorter runs in the ``lead_s`` (+ ``gap_s``)
        before its first frame: a siren's onset (a rotor's run-up, a wail's first sweep, masked by traffic)
        breaks into short runs before its tone holds, and that is why its interval is backdated."""
        c = self.config
        self._counted_version += 1
        if len(self._counted_ids) > 2 * (self.tone_run.maxlen or 1):  # bounded: ids older than the log go
            self._counted_ids = {i for i in self._counted_ids if i >= self.tone_run[0]}
        self._counted_ids.add(self._run_id)
        k, n = len(self.tone_run) - 1, len(self.tone_run)
        while k >= 0 and self.tone_run[k] == self._run_id:
            k -= 1
        if k + 1 >= n:
            return
        first = self.tone_log[k + 1][0]
        while k >= 0 and self.tone_log[k][0] >= first - c.lead_s - c.gap_s - 1e-9:
            self._counted_ids.add(self.tone_run[k])
            k -= 1

    def _held(self, row: np.ndarray, f: float) -> float | None:
        """The frequency of a narrow peak within 3 % of ``f`` standing ``hold_prominence_db`` above the
        median (a known tone masked by traffic), or None."""
        c = self.config
        k0 = int(round(f / self._df))
        lo, hi = max(c.narrow_bins + 1, int(k0 * 0.97)), min(row.size - c.narrow_bins - 2, int(k0 * 1.03) + 1)
        if hi < lo:
            return None
        k = lo + int(np.argmax(row[lo: hi + 1]))
        v = float(row[k])
        side = max(float(row[k - c.narrow_bins]), float(row[k + c.narrow_bins]))
        if v < row[k - 1] or v < row[k + 1] or v < 10 ** (c.min_drop_db / 10) * side:
            return None
        if 10 * np.log10(v / (float(median1(row[self._ref])) + 1e-30) + 1e-30) < c.hold_prominence_db:
            return None
        if engine_line(row[None, :], np.array([k]), self._df, engine_max_hz=c.engine_max_hz)[0]:
            return None  # an engine's order that came near the tone (a pass-by after a horn): it holds no run
        return k * self._df

    def _tone_ms(self, row: np.ndarray, k: float, aw2: np.ndarray) -> float:
        """A-weighted mean square of a tone at bin ``k`` and its harmonics (the spectra sum to the mean square)."""
        c = self.config
        w = c.tone_bins
        ks = np.rint(k * np.arange(1, c.tone_harmonics + 1)).astype(np.int64)
        ks = ks[(ks >= w) & (ks < row.size - w)]
        if ks.size == 0:
            return 0.0
        idx = (ks[:, None] + np.arange(-w, w + 1)[None, :]).ravel()
        return float(np.dot(row[idx], aw2[idx]))

    def _close_run(self) -> None:
        c = self.config
        if (self._run_start is not None and self._counted
                and self._last_tonal - self._run_start >= c.min_run_s and self._active_since is None):
            self.tonal_runs.append([self._run_start - c.lead_s, self._last_tonal + c.hold_s])
        if self._active_since is None:
            self._run_start, self._run_n, self._run_x, self._counted = None, 0, 0, False

    def siren_event(self, start: float, end: float) -> None:
        """The classifier called an event a siren: treat it as local evidence of a sounding siren.

        Opens an interval from ``start - lead_s`` that stays open while the tonal frames go on (the same
        switch-off rule as the tonal detector), or closes it ``hold_s`` after the event if they stopped. A
        chain of touching events is finalized up to ``hard_limit_s`` after this one ended: an interval or a run
        going on *now* is this siren's only if it began by ``end + hold_s``; a later one is another sound's.
        """
        c = self.config
        a = start - c.lead_s
        self.event_spans.append((start, end))
        if self._active_since is not None and self._active_since > end + c.hold_s:
            self.local_intervals.insert(len(self.local_intervals) - 1, [a, end + c.hold_s])  # the last: active
            return
        if self._active_since is not None:
            iv = self.local_intervals[-1]
            iv[0] = min(iv[0], a)
            self._active_since = iv[0]
            self._min_end = max(self._min_end, end + c.hold_s)
            return
        frac = sum(self._hist) / self._hist.maxlen if self._hist.maxlen else 0.0
        going_on = self._run_start is not None and self._run_start <= end + c.hold_s
        if frac >= c.off_fraction and going_on:
            self._active_since = a
            self._min_end = end + c.hold_s
            self._run_start = a
            self.local_intervals.append([a, float("inf")])
        else:
            self.local_intervals.append([a, end + c.hold_s])

