"""Levels of simulated sound, measured independently of gateway.noise (the scene families' own truth).

A-weighting in the frequency domain and an exponential Fast detector: ``lafmax_db`` (LAFmax), ``laf_trace_db``
(10 Hz LAF trace), ``laeq_db``. Samples are digital full-scale units; ``full_scale_db`` is the SPL of a
full-scale sine.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

P_REF_DB = 120.0  # default SPL of a digital full-scale sine


def _a_weight_gain(f: np.ndarray) -> np.ndarray:
    f1, f2, f3, f4 = 20.598997, 107.65265, 737.86223, 12194.217
    f2_ = f * f
    with np.errstate(divide="ignore", invalid="ignore"):
        num = f4**2 * f2_**2
        den = (f2_ + f1**2) * np.sqrt(f2_ + f2**2) * np.sqrt(f2_ + f3**2) * (f2_ + f4**2)
        g = num / den * 10 ** (1.9997 / 20)
    return np.nan_to_num(g)


def lafmax_db(x: np.ndarray, fs: int, full_scale_db: float = P_REF_DB) -> float:
    """A-weighted Fast maximum of ``x`` (frequency-domain A-weighting, exponential Fast detector)."""
    n = int(2 ** math.ceil(math.log2(max(len(x), 2))))
    spec = np.fft.rfft(x, n)
    spec *= _a_weight_gain(np.fft.rfftfreq(n, 1 / fs))
    y = np.fft.irfft(spec, n)[: len(x)]
    a = math.exp(-1 / (fs * 0.125))
    env = signal.lfilter([1 - a], [1, -a], y * y)
    return 10 * math.log10(max(float(env.max()), 1e-30)) + full_scale_db + 10 * math.log10(2)


def laf_trace_db(x: np.ndarray, fs: int, full_scale_db: float = P_REF_DB) -> list[float]:
    """10 Hz trace of the A-weighted Fast level of ``x`` alone (maximum per 100 ms), dB."""
    n = int(2 ** math.ceil(math.log2(max(len(x), 2))))
    spec = np.fft.rfft(x, n) * _a_weight_gain(np.fft.rfftfreq(n, 1 / fs))
    y = np.fft.irfft(spec, n)[: len(x)]
    a = math.exp(-1 / (fs * 0.125))
    env = signal.lfilter([1 - a], [1, -a], y * y)
    step = fs // 10
    m = env[: len(env) // step * step].reshape(-1, step).max(axis=1)
    k = full_scale_db + 10 * math.log10(2)
    return [round(10 * math.log10(max(float(v), 1e-30)) + k, 1) for v in m]


def laeq_db(x: np.ndarray, fs: int, full_scale_db: float = P_REF_DB) -> float:
    n = int(2 ** math.ceil(math.log2(max(len(x), 2))))
    spec = np.fft.rfft(x, n) * _a_weight_gain(np.fft.rfftfreq(n, 1 / fs))
    y = np.fft.irfft(spec, n)[: len(x)]
    return 10 * math.log10(max(float(np.mean(y * y)), 1e-30)) + full_scale_db + 10 * math.log10(2)
