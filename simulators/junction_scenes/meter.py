"""The family's own sound level meter (simulators may not import the gateway): A-weighting as the bilinear
transform of the IEC 61672-1 analogue poles and zeros, normalised to 0 dB at 1 kHz, and Fast time weighting as the
exact one-pole recursion of the squared A-weighted pressure, read every 1 ms tick (48 samples at 48 kHz) like a
class-1 meter's display."""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import signal

TAU_FAST = 0.125
# IEC 61672-1 analogue A-weighting: pole frequencies, Hz
F1, F2, F3, F4 = 20.598997, 107.65265, 737.86223, 12194.217


@functools.lru_cache(maxsize=8)
def a_sos(fs: int) -> np.ndarray:
    w = [2 * math.pi * f for f in (F1, F1, F2, F3, F4, F4)]
    z, p, k = [0.0] * 4, [-x for x in w], 1.0
    zd, pd, kd = signal.bilinear_zpk(z, p, k, fs)
    sos = signal.zpk2sos(zd, pd, kd)
    _, h = signal.sosfreqz(sos, worN=[1000.0], fs=fs)
    sos[0, :3] /= abs(h[0])
    return sos


def a_weight(x: np.ndarray, fs: int) -> np.ndarray:
    return signal.sosfilt(a_sos(fs), x)


def level_constant(full_scale_db: float) -> float:
    """dB SPL of a mean square of 1.0 (a full-scale sine, mean square 0.5, reads ``full_scale_db``)."""
    return full_scale_db + 10 * math.log10(2.0)


def tick(fs: int) -> int:
    n = fs // 10
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: abs(d - fs / 1000))


def laf_ticks(x: np.ndarray, i0: int, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """Fast-weighted A-weighted mean square of ``x`` (scene samples from index ``i0``, silent before) at every
    tick end; returns (tick-end sample indices in the scene, mean squares)."""
    a = math.exp(-1.0 / (fs * TAU_FAST))
    y = signal.lfilter([1 - a], [1, -a], a_weight(x, fs) ** 2)
    m = tick(fs)
    first = (-(i0 + 1)) % m  # local index of the first tick end (global index = multiple of m, minus 1)
    idx = np.arange(first, x.size, m)
    return idx + i0, y[idx]


def laeq(x: np.ndarray, fs: int, full_scale_db: float) -> float:
    ms = float(np.mean(a_weight(x, fs) ** 2))
    return 10 * math.log10(max(ms, 1e-30)) + level_constant(full_scale_db)


def lafmax(x: np.ndarray, i0: int, fs: int, full_scale_db: float) -> float:
    _, ms = laf_ticks(x, i0, fs)
    return 10 * math.log10(max(float(ms.max()), 1e-30)) + level_constant(full_scale_db)


def event_stats(x: np.ndarray, i0: int, fs: int, full_scale_db: float, t_lo: float = -1e9,
                t_hi: float = 1e9) -> dict:
    """LAFmax, its time, the span within 20 dB of it (clipped to [t_lo, t_hi]) and the 100 ms LAF trace over
    that span."""
    idx, ms = laf_ticks(x, i0, fs)
    db = 10 * np.log10(np.maximum(ms, 1e-30)) + level_constant(full_scale_db)
    k = int(np.argmax(db))
    t = (idx + 1) / fs
    above = np.nonzero(db >= db[k] - 20.0)[0]
    t_start, t_end = max(float(t[above[0]]), t_lo), min(float(t[above[-1]]), t_hi)
    t0 = math.floor(t_start * 10 + 1e-9) / 10
    grid = np.arange(t0, t_end + 1e-9, 0.1)
    trace = np.interp(grid, t, db)
    return {"lafmax": float(db[k]), "t_peak": round(float(t[k]), 3), "t_start": round(t_start, 3),
            "t_end": round(t_end, 3), "laf_trace": [round(float(v), 2) for v in trace],
            "laf_trace_t0": round(t0, 1)}
