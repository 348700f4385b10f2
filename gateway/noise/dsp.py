"""Streaming sound level meter: A-weighting, Fast/Slow exponential time weighting, 10 Hz frames.

Samples are floats in digital full-scale units (a full-scale sine has peak 1.0). The SPL of a full-scale
sine is ``full_scale_db`` (120 dB for a -26 dBFS @ 94 dB MEMS microphone); the per-microphone
``calibration_offset_db`` (from a 94 dB / 1 kHz calibrator check) is added on top.

Pipeline, all vectorised and with state carried across blocks so any block split gives the same result:

1. A-weighting: ``sosfilt`` (float32 second-order sections, state ``zi``).
2. Square, and reduce every tick of ``M`` samples (~1 ms) with one matrix product to three numbers:
   the plain energy sum and the exact exponentially weighted sums for Fast and Slow:
   ``u[t] = sum_k (1-a) a^(M-1-k) x2[tM+k]``, so that ``y[t] = a^M y[t-1] + u[t]`` is the exact value of
   ``y[n] = a y[n-1] + (1-a) x2[n]`` at each tick end (a = exp(-1/(fs tau))). That recursion runs with
   ``lfilter`` at the tick rate, with state.
3. Ticks are grouped into 100 ms frames: LAF at the frame end, LAFmax over the frame's ticks, LAS at the
   frame end, the frame's A-weighted mean square, and the count of clipped input samples.

LAFmax is sampled at tick ends, so it may read low by at most the Fast decay over one tick
(34.7 dB/s x 1 ms = 0.035 dB); LAeq and SEL are exact energy sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from gateway.noise.errors import ConfigError, SampleError
from gateway.noise.weighting import a_weighting_sos

TAU_FAST = 0.125
TAU_SLOW = 1.0
FRAME_HZ = 10
FRAME_DTYPE = np.dtype([
    ("index", np.int64),  # frame number since the stream start; covers samples [index*F, (index+1)*F)
    ("laf", np.float64),  # LAF at the frame end, dB
    ("lafmax", np.float64),  # maximum LAF within the frame, dB
    ("las", np.float64),  # LAS at the frame end, dB
    ("lasmax", np.float64),  # maximum LAS within the frame, dB
    ("ms", np.float64),  # A-weighted mean square over the frame, full-scale units squared
    ("clipped", np.int64),  # input samples at or beyond the clip level
])


@dataclass(frozen=True)
class MeterConfig:
    fs: int = 48_000
    full_scale_db: float = 120.0  # SPL of a digital full-scale sine
    calibration_offset_db: float = 0.0  # per-microphone correction from the last calibrator check
    clip_level: float = 0.999  # |x| at or above this (full-scale units) counts as a clipped sample

    def __post_init__(self) -> None:
        if not isinstance(self.fs, int) or self.fs < 44_100 or self.fs % FRAME_HZ:
            raise ConfigError(f"sample rate {self.fs!r}: need an integer >= 44100 Hz divisible by 10")
        if not 60.0 <= self.full_scale_db <= 180.0:
            raise ConfigError(f"full_scale_db {self.full_scale_db}: expected 60..180 dB SPL")
        if not -20.0 <= self.calibration_offset_db <= 20.0:
            raise ConfigError(f"calibration_offset_db {self.calibration_offset_db}: expected -20..+20 dB")
        if not 0.0 < self.clip_level <= 1.0:
            raise ConfigError(f"clip_level {self.clip_level}: expected 0 < level <= 1")

    @property
    def level_constant_db(self) -> float:
        """Add to 10*log10(mean square in full-scale units) to get dB SPL."""
        return self.full_scale_db + 10 * np.log10(2.0) + self.calibration_offset_db

    @property
    def frame_samples(self) -> int:
        return self.fs // FRAME_HZ


def tick_samples(fs: int) -> int:
    """The divisor of the frame length closest to 1 ms of samples (48 at 48 kHz)."""
    frame = fs // FRAME_HZ
    target = fs / 1000
    divisors = [d for d in range(1, frame + 1) if frame % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), d))


def to_db(ms: np.ndarray | float, constant_db: float) -> np.ndarray:
    return 10 * np.log10(np.maximum(ms, 1e-30)) + constant_db


class LevelMeter:
    """Feed blocks of samples of any length; get back the 10 Hz frames each block completed."""

    def __init__(self, config: MeterConfig | None = None) -> None:
        self.config = config or MeterConfig()
        fs = self.config.fs
        self.fs = fs
        self.k_db = self.config.level_constant_db
        self._sos = a_weighting_sos(fs).astype(np.float32)
        self._zi = np.zeros((self._sos.shape[0], 2), dtype=np.float32)
        self.tick = tick_samples(fs)
        self.ticks_per_frame = self.config.frame_samples // self.tick
        m = self.tick
        k = np.arange(m)
        cols = [np.ones(m)]
        self._decay = []
        for tau in (TAU_FAST, TAU_SLOW):
            a = np.exp(-1.0 / (fs * tau))
            cols.append((1 - a) * a ** (m - 1 - k))
            self._decay.append(a**m)
        self._w = np.stack(cols, axis=1).astype(np.float32)
        self._one = np.ones(1)
        self._den = [np.array([1.0, -c]) for c in self._decay]  # y[t] = c y[t-1] + u[t] at the tick rate
        self._y = [0.0, 0.0]  # Fast and Slow mean-square states at the last tick end
        self._rest = np.zeros(0, dtype=np.float32)  # weighted samples short of a whole tick
        self._rest_raw_clipped = 0
        self._ticks = np.zeros((0, 3))  # [energy, fast, slow] of ticks short of a whole frame
        self._tick_clips = np.zeros(0, dtype=np.int64)
        self.frames_done = 0
        self.weighted_sq = np.zeros(0, dtype=np.float32)  # A-weighted squared samples of the last block fed
        self.samples_in = 0
        self.clipped_total = 0

    def feed(self, x: np.ndarray) -> np.ndarray:
        """Process one block (1-D, full-scale units). Returns the completed frames (FRAME_DTYPE)."""
        x = np.asarray(x, dtype=np.float32).reshape(-1)
        if x.size == 0:
            return np.zeros(0, dtype=FRAME_DTYPE)
        peak = max(float(x.max()), -float(x.min()))  # = max |x| without an |x| array; NaN stays NaN
        if not math.isfinite(peak):
            raise SampleError("samples contain NaN or infinity")
        self.samples_in += x.size
        y, self._zi = signal.sosfilt(self._sos, x, zi=self._zi)
        clip_mask_needed = peak >= self.config.clip_level
        np.square(y, out=y)  # y is sosfilt's own new array: square it in place
        self.weighted_sq = y  # read-only for consumers (the pipeline copies it into its ring); never changed below
        y2 = np.concatenate([self._rest, y]) if self._rest.size else y
        n_ticks = y2.size // self.tick
        used = n_ticks * self.tick
        # clipped-sample count per tick (aligned with the weighted stream)
        if clip_mask_needed:
            clip = (np.abs(x) >= self.config.clip_level).astype(np.int64)
            clip = np.concatenate([np.zeros(self._rest.size, dtype=np.int64), clip])
            self.clipped_total += int(clip.sum())
            clip_rest = int(clip[used:].sum())
            tick_clips = clip[:used].reshape(n_ticks, self.tick).sum(axis=1)
            if n_ticks:
                tick_clips[0] += self._rest_raw_clipped
        else:
            clip_rest = 0
            tick_clips = np.zeros(n_ticks, dtype=np.int64)
            if n_ticks:
                tick_clips[0] = self._rest_raw_clipped
        if n_ticks == 0:
            self._rest = y2
            self._rest_raw_clipped += clip_rest
            return np.zeros(0, dtype=FRAME_DTYPE)
        self._rest_raw_clipped = clip_rest
        u = (y2[:used].reshape(n_ticks, self.tick) @ self._w).astype(np.float64)
        self._rest = y2[used:].copy()
        out = np.empty((n_ticks, 3))
        out[:, 0] = u[:, 0]
        for i in (0, 1):
            c = self._decay[i]
            out[:, i + 1], _ = signal.lfilter(self._one, self._den[i], u[:, i + 1], zi=np.array([c * self._y[i]]))
            self._y[i] = float(out[-1, i + 1])
        return self._frames(out, tick_clips)

    def _frames(self, ticks: np.ndarray, clips: np.ndarray) -> np.ndarray:
        if self._ticks.shape[0]:
            ticks = np.concatenate([self._ticks, ticks])
            clips = np.concatenate([self._tick_clips, clips])
        tpf = self.ticks_per_frame
        n = ticks.shape[0] // tpf
        self._ticks = ticks[n * tpf:].copy()
        self._tick_clips = clips[n * tpf:].copy()
        frames = np.zeros(n, dtype=FRAME_DTYPE)
        if n == 0:
            return frames
        t = ticks[: n * tpf].reshape(n, tpf, 3)
        frames["index"] = np.arange(self.frames_done, self.frames_done + n)
        frames["laf"] = to_db(t[:, -1, 1], self.k_db)
        frames["lafmax"] = to_db(t[:, :, 1].max(axis=1), self.k_db)
        frames["las"] = to_db(t[:, -1, 2], self.k_db)
        frames["lasmax"] = to_db(t[:, :, 2].max(axis=1), self.k_db)
        frames["ms"] = t[:, :, 0].sum(axis=1) / (tpf * self.tick)
        frames["clipped"] = clips[: n * tpf].reshape(n, tpf).sum(axis=1)
        self.frames_done += n
        return frames


@dataclass(frozen=True)
class LevelSummary:
    duration_s: float
    laeq: float
    lafmax: float
    sel: float
    la10: float
    la90: float
    clipped: int


def summarize(frames: np.ndarray, k_db: float) -> LevelSummary:
    """LAeq, LAFmax, SEL (LAE), LA10 and LA90 (from the 10 Hz LAF samples) over a run of frames."""
    if frames.size == 0:
        raise ConfigError("no frames to summarise")
    duration = frames.size / FRAME_HZ
    laeq = float(to_db(frames["ms"].mean(), k_db))
    return LevelSummary(
        duration_s=duration,
        laeq=laeq,
        lafmax=float(frames["lafmax"].max()),
        sel=laeq + 10 * np.log10(duration),
        la10=float(np.percentile(frames["laf"], 90)),
        la90=float(np.percentile(frames["laf"], 10)),
        clipped=int(frames["clipped"].sum()),
    )


_PCT: dict[tuple, tuple] = {}


def percentile_rows(a: np.ndarray, q: tuple[float, ...]) -> np.ndarray:
    """``np.percentile(a, q, axis=1)`` (its default linear method) of a finite 2-D array, with the same
    arithmetic, so the same bits: a sort of the short rows and cached indices instead of its generic partition
    and index bookkeeping (the per-second LA10/LA90 of ten values). Returns shape ``(len(q), rows)``."""
    n = a.shape[1]
    got = _PCT.get((n, q))
    if got is None:
        qs = np.asarray(q, dtype=np.float64) / 100
        v = (n - 1) * qs  # numpy's virtual index for its linear method (Hyndman & Fan 7)
        lo = np.floor(v)
        g = (v - lo)[:, None]  # numpy's gamma
        i = np.clip(lo.astype(np.intp), 0, n - 1)
        got = _PCT.setdefault((n, q), (i, np.clip(i + 1, 0, n - 1), g, 1 - g, np.broadcast_to(g >= 0.5, g.shape)))
    i, j, g, g1, upper = got
    s = np.sort(a, axis=1)
    lo, hi = s[:, i].T, s[:, j].T
    d = hi - lo
    out = lo + d * g
    np.subtract(hi, d * g1, out=out, where=upper)  # numpy's _lerp: from the upper neighbour where gamma >= 0.5
    return out


def laeq_per_second(frames: np.ndarray, k_db: float) -> np.ndarray:
    """LAeq,1s for every whole second covered by ``frames`` (which must start on a second boundary)."""
    n = frames.size // FRAME_HZ
    ms = frames["ms"][: n * FRAME_HZ].reshape(n, FRAME_HZ).mean(axis=1)
    return to_db(ms, k_db)
