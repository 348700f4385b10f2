"""Siren suppression from two independent signals.

1. The hub's retained public zone state (``dozor/v1/zone/{zone}/state``): while a zone that this gateway
   belongs to is ``active`` with a sounding signal (anything but ``silent-test``), sirens are sounding.
   ``grace_s`` after it ends still counts (rotor sirens run down).
2. A local tonal detector on the 8 Hz spectrogram. A frame is tonal only when its dominant peak in
   250-3000 Hz is *narrow*: a local maximum standing >= ``min_drop_db`` above the bins ``narrow_bins`` away on
   both sides (11.7 Hz bins; or, for a fast sweep, in the 47 Hz bins of the short spectrum), and >=
   ``min_prominence_db`` above the median of 150-5000 Hz. Broadband road noise, a spectrum tilted towards
   the low frequencies, or a broad resonance never qualify however loud they are. Nor does a peak that is one
   order of a low harmonic series (``gateway.noise.harmonics.series_member``: narrow peaks at +- a 30-500 Hz
   spacing on both sides): engine orders, which follow the rpm, and voices are such series; a siren's or a
   horn's tone has no such neighbours. Nor is the root of such a comb (``comb_root``: orders 2-4 present, even
   orders as strong as odd ones: an engine firing above 250 Hz; a siren's tone is odd-harmonic). Tonal frames form a *run*
   only with continuity of frequency (the peak moves <= ``max_jump_oct`` between tonal frames) and gaps of at
   most ``gap_s`` (limited bridging); a run counts once it holds ``min_frames`` tonal frames. When at least
   60 % of the last ``window_s`` seconds were frames of runs, a siren is sounding until fewer than 20 % are;
   the interval is backdated to ``lead_s`` before the run start (a rotor siren's run-up is not yet tonal) and
   held ``hold_s`` after the last tonal frame. An event the classifier calls a siren opens such an interval
   too (``siren_event``), so a siren masked by passing traffic stays known. ``run_frames`` counts the frames
   in runs (the false-alarm measure of ``bench.noise_accuracy``: <= 1 % of frames on siren-free scenes).

An event that overlaps either kind of interval, or that the classifier calls a siren, is flagged
``suppressed`` with its reasons. It is kept and reported, never dropped, and can never become an
enforcement case.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from contract.models import Signal, ZoneState, ZoneStatus
from gateway.noise.harmonics import comb_root, series_member

SILENT = {Signal.SILENT_TEST}


@dataclass(frozen=True)
class SuppressionConfig:
    window_s: float = 10.0
    on_fraction: float = 0.6
    off_fraction: float = 0.2
    hold_s: float = 2.0
    gap_s: float = 0.75  # a run of tonal frames survives gaps this long, no longer (limited bridging)
    lead_s: float = 2.0
    min_run_s: float = 2.0  # a tonal run this long is remembered: not enough to suppress, enough to block
    #                         enforcement of an event next to it (a siren starting, masked or far away)  # intervals start this much before the first tonal frame (a rotor siren's run-up)
    grace_s: float = 3.0
    min_prominence_db: float = 18.0
    min_concentration: float = 0.3
    narrow_bins: int = 4  # a tonal peak drops min_drop_db within this many bins on both sides
    min_drop_db: float = 12.0
    max_jump_oct: float = 1.0  # continuity of frequency between consecutive tonal frames of a run
    min_frames: int = 6  # tonal frames before a run counts (0.75 s at 8 Hz)
    hold_prominence_db: float = 8.0  # a counted run's own tone, still narrow, keeps it going at this prominence
    hold_max_s: float = 6.0  # ... for at most this long after the last frame that was tonal on its own


class SirenSuppressor:
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
        self._last_full = -1e9
        self._run_n = 0
        self.frames_seen = 0
        self.run_frames = 0
        self._run_start: float | None = None  # first tonal frame of the current run
        self._active_since: float | None = None
        self._last_tonal = -1e9
        self.local_intervals: list[list[float]] = []
        self.tonal_runs: list[list[float]] = []
        self.zone_intervals: list[list[float]] = []
        self._zone_versions: dict[str, int] = {}
        self._zone_open: dict[str, float] = {}
        self.tonal_frames = 0

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
        elif not sounding and state.zone in self._zone_open:
            start = self._zone_open.pop(state.zone)
            for iv in self.zone_intervals:
                if iv[0] == start and iv[1] == float("inf"):
                    iv[1] = t + self.config.grace_s

    def add_zone_interval(self, start: float, end: float) -> None:
        """Offline analysis: a known interval (stream seconds) when the hub said sirens were sounding."""
        self.zone_intervals.append([start, end + self.config.grace_s])

    # ------------------------------------------------------------ local tonal detector
    def _tonal(self, power: np.ndarray, band: np.ndarray, ref: np.ndarray, w: int,
               prom_db: float) -> tuple[np.ndarray, np.ndarray]:
        """(tonal mask, peak bin) of frames: a narrow, prominent dominant peak in 250-3000 Hz."""
        c = self.config
        idx = np.flatnonzero(band)
        b0, b1 = int(idx[0]), int(idx[-1]) + 1  # the band lies >= w bins inside the spectrum
        r0, r1 = (int(i) for i in np.flatnonzero(ref)[[0, -1]])
        pk = b0 + np.argmax(power[:, b0:b1], axis=1)
        flat = power.ravel()
        base = np.arange(power.shape[0]) * power.shape[1] + pk
        at = lambda d: flat[base + d]  # noqa: E731  (the bin d away from each frame's peak)
        v = at(0)
        ref_band = power[:, r0: r1 + 1]
        med = np.median(ref_band, axis=1) + 1e-30
        conc = (at(-2) + at(-1) + v + at(1) + at(2)) / (ref_band.sum(axis=1) + 1e-30)
        g = 10 ** (c.min_drop_db / 10)
        narrow = ((v >= at(-1)) & (v >= at(1)) & (v >= g * np.maximum(at(-w), at(w)))
                  & (pk > b0) & (pk < b1 - 1))
        tonal = (v >= med * 10 ** (prom_db / 10)) & (conc >= c.min_concentration) & narrow
        if tonal.any():  # engine orders and voices are harmonic series of a low fundamental: not a siren
            df = float(self._df if power.shape[1] == self._band.size else self._sdf)
            tonal[tonal] &= ~series_member(power[tonal], pk[tonal], df)
            if tonal.any():  # nor the firing frequency of a fast engine (a comb root with even orders)
                tonal[tonal] &= ~comb_root(power[tonal], pk[tonal], df)
        return tonal, pk

    def feed(self, index: np.ndarray, power: np.ndarray, short: np.ndarray | None = None) -> None:
        if index.size == 0:
            return
        c = self.config
        tonal, pk = self._tonal(power, self._band, self._ref, c.narrow_bins, c.min_prominence_db)
        freq = pk * self._df
        if short is not None:
            if self._sband is None:
                fs_ = np.arange(short.shape[1]) * self._df * (power.shape[1] - 1) / (short.shape[1] - 1)
                self._sband = (fs_ >= 250) & (fs_ <= 3000)
                self._sref = (fs_ >= 150) & (fs_ <= 5000)
                self._sdf = float(fs_[1])
            ts_, spk = self._tonal(short, self._sband, self._sref, 5, c.min_prominence_db)
            freq = np.where(tonal, freq, spk * self._sdf)
            tonal = tonal | ts_
        self.tonal_frames += int(tonal.sum())
        for j, (i, is_tonal, f) in enumerate(zip(index.tolist(), tonal.tolist(), freq.tolist(), strict=True)):
            t = (i + 1) / self.frame_hz
            full = is_tonal
            self.frames_seen += 1
            in_run = False
            if (not is_tonal and self._run_n >= c.min_frames  # a counted run: follow its tone through masking
                    and t - self._last_full <= c.hold_max_s):
                held = self._held(power[j], self._run_f)
                if held is not None:
                    is_tonal, f = True, held
            if is_tonal:
                continues = (self._run_start is not None and t - self._last_tonal <= c.gap_s + 1e-9
                             and abs(np.log2(f / self._run_f)) <= c.max_jump_oct)
                if not continues:
                    if self._active_since is None:
                        self._close_run()
                        self._run_start = t - 1 / self.frame_hz
                    self._run_n = 0
                self._run_f = f
                self._run_n += 1
                self._last_tonal = t
                if full:
                    self._last_full = t
                if self._run_n == c.min_frames:  # the run now counts: so do its earlier frames
                    for k in range(1, min(c.min_frames, len(self._hist) + 1)):
                        if self._hist[-k] is False and self._hist_tonal[-k]:
                            self._hist[-k] = True
                    self.run_frames += c.min_frames - 1
                in_run = self._run_n >= c.min_frames
            elif self._run_start is not None and t - self._last_tonal > c.gap_s and self._active_since is None:
                self._close_run()
            if in_run:
                self.run_frames += 1
            self._hist.append(in_run)
            self._hist_tonal.append(bool(is_tonal))
            frac = sum(self._hist) / self._hist.maxlen if self._hist.maxlen else 0.0
            if self._active_since is None:
                if frac >= c.on_fraction and self._run_start is not None:
                    self._active_since = self._run_start - c.lead_s
                    self.local_intervals.append([self._active_since, float("inf")])
            elif frac < c.off_fraction and t - self._last_tonal > c.hold_s:
                self.local_intervals[-1][1] = self._last_tonal + c.hold_s
                self._active_since = None
                self._run_start = None
                self._run_n = 0

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
        if 10 * np.log10(v / (float(np.median(row[self._ref])) + 1e-30) + 1e-30) < c.hold_prominence_db:
            return None
        return k * self._df

    def _close_run(self) -> None:
        c = self.config
        if (self._run_start is not None and self._run_n >= c.min_frames
                and self._last_tonal - self._run_start >= c.min_run_s and self._active_since is None):
            self.tonal_runs.append([self._run_start - c.lead_s, self._last_tonal + c.hold_s])
        if self._active_since is None:
            self._run_start, self._run_n = None, 0

    def siren_event(self, start: float, end: float) -> None:
        """The classifier called an event a siren: treat it as local evidence of a sounding siren.

        Opens an interval from ``start - lead_s`` that stays open while the tonal frames go on (the same
        switch-off rule as the tonal detector), or closes it ``hold_s`` after the event if they stopped.
        """
        c = self.config
        a = start - c.lead_s
        if self._active_since is not None:
            iv = self.local_intervals[-1]
            iv[0] = min(iv[0], a)
            self._active_since = iv[0]
            return
        frac = sum(self._hist) / self._hist.maxlen if self._hist.maxlen else 0.0
        if frac >= c.off_fraction:
            self._active_since = a
            self._run_start = a
            self.local_intervals.append([a, float("inf")])
        else:
            self.local_intervals.append([a, end + c.hold_s])

    # ------------------------------------------------------------ queries
    def tonal_nearby(self, start: float, end: float, own: tuple[float, float] | None = None) -> bool:
        """Did a tonal run (>= ``min_run_s``, or one still going on) that did not switch the detector on
        touch [start, end]? A siren may be starting, masked or far away: not enough to suppress, enough
        to keep the event from becoming an enforcement case."""
        if any(a < end and start < b and not _within(a, b, own) for a, b in self.tonal_runs):
            return True
        if own is not None and self._run_start is not None and own[0] <= self._run_start - self.config.lead_s:
            return False  # the current run started within the event's own span
        return (self._active_since is None and self._run_start is not None
                and self._run_n >= self.config.min_frames and self._run_start - self.config.lead_s < end)

    def reasons(self, start: float, end: float, own: tuple[float, float] | None = None) -> list[str]:
        """Why an event over [start, end] (stream seconds) is suppressed; empty if it is not. Local tonal
        intervals lying within ``own`` (the span of a confident exhaust: its engine tone) are not counted;
        the hub's zone state always is."""
        out = []
        if any(a < end and start < b for a, b in self.zone_intervals):
            out.append("zone_state")
        if any(a < end and start < b and not _within(a, b, own) for a, b in self.local_intervals):
            out.append("local_tonal")
        return out


def _within(a: float, b: float, own: tuple[float, float] | None) -> bool:
    return own is not None and own[0] <= a and b <= own[1]
