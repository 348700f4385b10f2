"""Siren suppression from two independent signals.

1. The hub's retained public zone state (``dozor/v1/zone/{zone}/state``): while a zone that this gateway
   belongs to is ``active`` with a sounding signal (anything but ``silent-test``), sirens are sounding.
   ``grace_s`` after it ends still counts (rotor sirens run down).
2. A local tonal detector on the 8 Hz spectrogram: a frame is tonal when its dominant peak in 250-3000 Hz
   stands >= 18 dB above the median of 150-5000 Hz and holds >= 30 % of that band's energy. When at least
   60 % of the last ``window_s`` seconds were tonal, a siren is sounding until fewer than 20 % are; the
   interval is backdated to ``lead_s`` before the start of the tonal run (a rotor siren's run-up is not yet
   tonal) and held ``hold_s`` after the last tonal frame. An event the classifier calls a siren opens
   such an interval too (``siren_event``), so a siren masked by passing traffic stays known.

An event that overlaps either kind of interval, or that the classifier calls a siren, is flagged
``suppressed`` with its reasons. It is kept and reported, never dropped, and can never become an
enforcement case.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from contract.models import Signal, ZoneState, ZoneStatus

SILENT = {Signal.SILENT_TEST}


@dataclass(frozen=True)
class SuppressionConfig:
    window_s: float = 10.0
    on_fraction: float = 0.6
    off_fraction: float = 0.2
    hold_s: float = 2.0
    gap_s: float = 4.0  # a run of tonal frames survives gaps this long (traffic masking the siren)
    lead_s: float = 2.0
    min_run_s: float = 2.0  # a tonal run this long is remembered: not enough to suppress, enough to block
    #                         enforcement of an event next to it (a siren starting, masked or far away)  # intervals start this much before the first tonal frame (a rotor siren's run-up)
    grace_s: float = 3.0
    min_prominence_db: float = 18.0
    min_concentration: float = 0.3


class SirenSuppressor:
    """Keeps intervals (stream seconds) during which a siren was sounding, from both signals."""

    def __init__(self, freqs: np.ndarray, frame_hz: float, config: SuppressionConfig | None = None,
                 *, t0: float = 0.0, zones: set[str] | None = None) -> None:
        self.config = config or SuppressionConfig()
        self.t0 = t0  # epoch seconds of stream time 0, to map zone-state timestamps
        self.zones = zones  # None = every zone counts
        self.frame_hz = frame_hz
        self._band = (freqs >= 250) & (freqs <= 3000)
        self._b0 = int(np.argmax(self._band))
        self._ref = (freqs >= 150) & (freqs <= 5000)
        n = max(1, round(self.config.window_s * frame_hz))
        self._hist: deque[bool] = deque(maxlen=n)
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
    def feed(self, index: np.ndarray, power: np.ndarray) -> None:
        if index.size == 0:
            return
        c = self.config
        pk = self._b0 + np.argmax(power[:, self._band], axis=1)
        rows = np.arange(power.shape[0])
        ref_band = power[:, self._ref]
        med = np.median(ref_band, axis=1) + 1e-30
        near = sum(power[rows, np.clip(pk + d, 0, power.shape[1] - 1)] for d in (-2, -1, 0, 1, 2))
        conc = near / (ref_band.sum(axis=1) + 1e-30)
        prom = 10 * np.log10(power[rows, pk] / med + 1e-30)
        tonal = (prom >= c.min_prominence_db) & (conc >= c.min_concentration)
        self.tonal_frames += int(tonal.sum())
        for i, is_tonal in zip(index.tolist(), tonal.tolist(), strict=True):
            t = (i + 1) / self.frame_hz
            self._hist.append(is_tonal)
            if is_tonal:
                if self._run_start is None:
                    self._run_start = t - 1 / self.frame_hz
                self._last_tonal = t
            elif t - self._last_tonal > c.gap_s and self._active_since is None:
                if self._run_start is not None and self._last_tonal - self._run_start >= c.min_run_s:
                    self.tonal_runs.append([self._run_start - c.lead_s, self._last_tonal + c.hold_s])
                self._run_start = None
            frac = sum(self._hist) / self._hist.maxlen if self._hist.maxlen else 0.0
            if self._active_since is None:
                if frac >= c.on_fraction and self._run_start is not None:
                    self._active_since = self._run_start - c.lead_s
                    self.local_intervals.append([self._active_since, float("inf")])
            elif frac < c.off_fraction and t - self._last_tonal > c.hold_s:
                self.local_intervals[-1][1] = self._last_tonal + c.hold_s
                self._active_since = None
                self._run_start = None

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
    def tonal_nearby(self, start: float, end: float) -> bool:
        """Did a tonal run (>= ``min_run_s``, or one still going on) that did not switch the detector on
        touch [start, end]? A siren may be starting, masked or far away: not enough to suppress, enough
        to keep the event from becoming an enforcement case."""
        if any(a < end and start < b for a, b in self.tonal_runs):
            return True
        return (self._active_since is None and self._run_start is not None
                and self._run_start - self.config.lead_s < end)

    def reasons(self, start: float, end: float) -> list[str]:
        """Why an event over [start, end] (stream seconds) is suppressed; empty if it is not."""
        out = []
        if any(a < end and start < b for a, b in self.zone_intervals):
            out.append("zone_state")
        if any(a < end and start < b for a, b in self.local_intervals):
            out.append("local_tonal")
        return out
