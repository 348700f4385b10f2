"""The family's own level truth: IEC 61672-1 A-weighting and Fast time weighting, written from the standard's
formulas (not from the project's level meter; the tests compare the two).

A-weighting: the standard's analogue transfer function (poles at f1 = 20.598997 Hz (double), f2 = 107.65265 Hz,
f3 = 737.86223 Hz, f4 = 12194.217 Hz (double), four zeros at 0 Hz), normalised to 0 dB at 1 kHz, applied as its
complex frequency response (magnitude and phase, i.e. the causal analogue filter) to a zero-padded FFT.
Fast: the exponential time weighting with tau = 0.125 s, the exact one-pole recursion on the squared signal.
A digital full-scale sine is ``full_scale_db`` dB SPL, so a mean square ``ms`` reads full_scale_db + 10 log10(2 ms).
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import signal

F1, F2, F3, F4 = 20.598997, 107.65265, 737.86223, 12194.217
TAU_FAST = 0.125


def a_response(f: np.ndarray) -> np.ndarray:
    """Complex A-weighting response at frequencies f (Hz), 0 dB at 1 kHz."""
    def raw(ff: np.ndarray) -> np.ndarray:
        s = 2j * np.pi * np.asarray(ff, dtype=float)
        w1, w2, w3, w4 = (2 * np.pi * x for x in (F1, F2, F3, F4))
        s2 = s * s
        p1, p4 = s + w1, s + w4
        return w4 * w4 * (s2 * s2) / ((p1 * p1) * (s + w2) * (s + w3) * (p4 * p4))
    return raw(f) / abs(raw(np.array([1000.0]))[0])


def a_power(f: np.ndarray) -> np.ndarray:
    """|A(f)|^2 in real arithmetic (the same response, for energy sums)."""
    w1, w2, w3, w4 = ((2 * np.pi * x) ** 2 for x in (F1, F2, F3, F4))
    def raw(ff):
        o = (2 * np.pi * np.asarray(ff, dtype=float)) ** 2
        return w4 * w4 * o ** 4 / ((o + w1) ** 2 * (o + w2) * (o + w3) * (o + w4) ** 2)
    return raw(f) / raw(np.array([1000.0]))[0]


def a_db(f: np.ndarray | float) -> np.ndarray:
    return 20 * np.log10(np.maximum(np.abs(a_response(np.atleast_1d(f))), 1e-30))


_CACHE: dict[tuple[int, int], np.ndarray] = {}


def _fft_len(n: int) -> int:
    """2^k or 3 * 2^k at or above n (few distinct lengths, so responses are cached)."""
    p = 1 << max(0, (n - 1).bit_length())
    return 3 * p // 4 if 3 * p // 4 >= n else p


def a_bins(n: int, fs: int) -> np.ndarray:
    """The A-weighting response on the bins of a length-n real FFT (cached)."""
    if (n, fs) not in _CACHE:
        if len(_CACHE) > 16:
            _CACHE.clear()
        _CACHE[(n, fs)] = a_response(sfft.rfftfreq(n, 1.0 / fs))
    return _CACHE[(n, fs)]


def a_weight(x: np.ndarray, fs: int, pad_s: float = 0.25) -> np.ndarray:
    n = _fft_len(x.size + int(pad_s * fs))
    spec = sfft.rfft(x, n)
    spec *= a_bins(n, fs)
    return sfft.irfft(spec, n)[: x.size]


def fast_ms(xa: np.ndarray, fs: int) -> np.ndarray:
    """Fast-weighted mean square of an (A-weighted) signal, starting from rest."""
    a = np.exp(-1.0 / (TAU_FAST * fs))
    return signal.lfilter([1.0 - a], [1.0, -a], xa * xa)


def to_db(ms: np.ndarray | float, full_scale_db: float) -> np.ndarray:
    return full_scale_db + 10 * np.log10(np.maximum(2.0 * np.asarray(ms), 1e-30))


def laf(x: np.ndarray, fs: int, full_scale_db: float, xa: np.ndarray | None = None) -> np.ndarray:
    """A-weighted, Fast-weighted level per sample (dB); ``xa``: x already A-weighted."""
    return to_db(fast_ms(a_weight(x, fs) if xa is None else xa, fs), full_scale_db)


def laeq(x: np.ndarray, fs: int, full_scale_db: float) -> float:
    xa = a_weight(x, fs)
    return float(to_db(np.mean(xa * xa), full_scale_db))


def sel(x: np.ndarray, fs: int, full_scale_db: float, xa: np.ndarray | None = None) -> float:
    """A-weighted sound exposure level (re 1 s)."""
    xa = a_weight(x, fs) if xa is None else xa
    return float(to_db(np.sum(xa * xa) / fs, full_scale_db))


def block_levels(ms: np.ndarray, first: int, block: int, full_scale_db: float) -> tuple[np.ndarray, int]:
    """Per-block maxima (dB) of a Fast mean square whose first sample is scene sample ``first``; blocks are
    aligned to scene samples (block j starts at scene sample (b0 + j) * block). Returns (levels, b0)."""
    b0, off = divmod(first, block)
    padded = np.concatenate([np.zeros(off), ms])
    m = -(-padded.size // block)
    padded = np.concatenate([padded, np.zeros(m * block - padded.size)])
    return to_db(padded.reshape(m, block).max(axis=1), full_scale_db), b0
