"""The family's own sound level meter, written from IEC 61672-1 (simulators may not import the gateway).

A-weighting: the standard's analogue prototype (two zeros pairs at 0 Hz, double poles at 20.598997 Hz and
12194.217 Hz, single poles at 107.65265 Hz and 737.86223 Hz, normalised to 0 dB at 1 kHz) mapped to digital
second-order sections by the bilinear transform. Fast: the exponential time weighting, tau = 125 ms, as the
exact first-order recursion on the squared A-weighted pressure, sample by sample."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import signal

F1, F2, F3, F4 = 20.598997, 107.65265, 737.86223, 12194.217
TAU_FAST = 0.125


@lru_cache(maxsize=8)
def a_sos(fs: int) -> np.ndarray:
    w = [2 * math.pi * f for f in (F1, F2, F3, F4)]
    poles = [-w[0], -w[0], -w[1], -w[2], -w[3], -w[3]]
    z, p, k = signal.bilinear_zpk([0.0] * 4, poles, 1.0, fs)
    sos = signal.zpk2sos(z, p, k)
    _, h = signal.sosfreqz(sos, worN=[1000.0], fs=fs)
    sos[0, :3] /= abs(h[0])
    return sos


def fast_ms(x: np.ndarray, fs: int) -> np.ndarray:
    """The Fast-weighted mean square of the A-weighted signal, per sample (full-scale units squared)."""
    y = signal.sosfilt(a_sos(fs), np.asarray(x, float))
    a = math.exp(-1.0 / (fs * TAU_FAST))
    return signal.lfilter([1 - a], [1, -a], y * y)


def level_db(ms: np.ndarray | float, full_scale_db: float) -> np.ndarray:
    """dB SPL of a mean square in full-scale units (a full-scale sine, ms 0.5, reads full_scale_db)."""
    return 10 * np.log10(np.maximum(ms, 1e-30)) + full_scale_db + 10 * math.log10(2.0)


def laeq_db(x: np.ndarray, fs: int, full_scale_db: float) -> float:
    y = signal.sosfilt(a_sos(fs), np.asarray(x, float))
    return float(level_db(float(np.mean(y * y)), full_scale_db))


def lafmax(x: np.ndarray, fs: int, full_scale_db: float) -> tuple[float, int, np.ndarray]:
    """(LAFmax dB, its sample, the LAF track in dB) of a signal."""
    laf = level_db(fast_ms(x, fs), full_scale_db)
    i = int(np.argmax(laf))
    return float(laf[i]), i, laf


def describe(laf: np.ndarray, t0: float, fs: int) -> dict:
    """Timing labels of one source from its own LAF track at the microphone (which starts at time t0)."""
    i = int(np.argmax(laf))
    top = float(laf[i])
    above = np.flatnonzero(laf >= top - 20.0)
    lo, hi = int(above[0]), int(above[-1])
    t_start, t_end = t0 + lo / fs, t0 + hi / fs
    tr0 = math.floor(t_start * 10) / 10
    ts = np.arange(tr0, t_end + 1e-9, 0.1)
    idx = np.clip(np.round((ts - t0) * fs).astype(int), 0, laf.size - 1)
    return {"t_peak": round(t0 + i / fs, 4), "t_start": round(t_start, 4), "t_end": round(t_end, 4),
            "lafmax_mic_db": round(top, 3), "laf_trace_t0": round(tr0, 1),
            "laf_trace": [round(float(v), 2) for v in laf[idx]]}
