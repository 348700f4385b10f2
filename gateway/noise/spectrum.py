"""Spectra: a streaming short-time power spectrum (8 frames/s) and 1/3-octave band levels.

``Spectrogram.feed`` takes raw (unweighted) samples and returns the frames completed: frame ``j`` is the
Hann-windowed power spectrum of the last ``NFFT`` samples before sample ``(j+1)*hop``, scaled so that the
bins sum to the mean square (full-scale units squared). Hop = fs/8, so the cost is 8 FFTs per second.
With ``short_nfft`` set, each frame also carries the power spectrum of the last ``short_nfft`` samples
(finer in time, coarser in frequency: a fast siren sweep stays a narrow peak there).
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from gateway.noise.weighting import EXACT_THIRD_OCTAVES, NOMINAL_THIRD_OCTAVES

SPEC_HZ = 8
NFFT = 4096


class Spectrogram:
    def __init__(self, fs: int, short_nfft: int | None = None) -> None:
        self.fs = fs
        self.short_nfft = short_nfft
        if short_nfft:
            ws = np.hanning(short_nfft).astype(np.float32)
            self._ws = ws
            self._scale_s = np.float32(2.0 / (short_nfft * float(np.sum(ws.astype(np.float64) ** 2))))
            self.short_freqs = np.fft.rfftfreq(short_nfft, 1 / fs)
        self.hop = fs // SPEC_HZ
        self.nfft = min(NFFT, self.hop)
        w = np.hanning(self.nfft).astype(np.float32)
        self._w = w
        self._scale = np.full(self.nfft // 2 + 1, 2.0 / (self.nfft * float(np.sum(w.astype(np.float64) ** 2))))
        self._scale[0] /= 2
        self._scale[-1] /= 2
        self._scale32 = self._scale.astype(np.float32)  # what every frame is multiplied by (float32 spectra)
        self.freqs = np.fft.rfftfreq(self.nfft, 1 / fs)
        self._rest = np.zeros(0, dtype=np.float32)
        self.frames_done = 0

    def feed(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Returns (frame indices, power[n, nfft/2+1] float32), plus the short spectra if configured."""
        x = np.asarray(x, dtype=np.float32)
        buf = np.concatenate([self._rest, x]) if self._rest.size else x
        n = buf.size // self.hop
        if n == 0:
            self._rest = buf.copy()
            empty = (np.zeros(0, dtype=np.int64), np.zeros((0, self.freqs.size), dtype=np.float32))
            return (*empty, np.zeros((0, self.short_freqs.size), dtype=np.float32)) if self.short_nfft else empty
        seg = buf[: n * self.hop].reshape(n, self.hop)[:, self.hop - self.nfft:]
        power = _power(sfft.rfft(seg * self._w, axis=1, overwrite_x=True))
        power *= self._scale32
        self._rest = buf[n * self.hop:].copy()
        idx = np.arange(self.frames_done, self.frames_done + n)
        self.frames_done += n
        if self.short_nfft:
            short = _power(sfft.rfft(seg[:, self.nfft - self.short_nfft:] * self._ws, axis=1, overwrite_x=True))
            short *= self._scale_s
            return idx, power, short
        return idx, power


def _power(spec: np.ndarray) -> np.ndarray:
    """``spec.real**2 + spec.imag**2`` (the same float32 operations in the same order, two temporaries fewer)."""
    p = np.square(spec.real)
    p += np.square(spec.imag)
    return p


def median_rows(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=1)`` of a finite 2-D array (the same values, without its NaN checks: they cost more
    than the partition on the small arrays of the per-block and per-event spectra)."""
    n = a.shape[1]
    if n == 0 or a.shape[0] == 0:
        return np.full(a.shape[0], np.nan, dtype=a.dtype)
    h = n // 2
    if n % 2:
        return np.partition(a, h, axis=1)[:, h]
    part = np.partition(a, (h - 1, h), axis=1)
    return (part[:, h - 1] + part[:, h]) / 2


def median1(a: np.ndarray):
    """``np.median`` of a finite 1-D array (the same value; nan if empty)."""
    n = a.size
    if n == 0:
        return np.float64(np.nan)
    h = n // 2
    if n % 2:
        return np.partition(a, h)[h]
    part = np.partition(a, (h - 1, h))
    return (part[h - 1] + part[h]) / 2


_BANDS: dict[tuple, tuple] = {}


def band_edges(fc: float) -> tuple[float, float]:
    return fc * 10 ** (-0.05), fc * 10 ** 0.05


def _bands(n: int, fs: int, fmin: float, fmax: float) -> tuple:
    """Per input length: the Hann window, its power normalisation, and the nominal centres and FFT-bin ranges
    of the bands (cached: an event's spectrum is one second, so one or two lengths occur in practice)."""
    key = (n, fs, fmin, fmax)
    got = _BANDS.get(key)
    if got is None:
        w = np.hanning(n)
        f = np.fft.rfftfreq(n, 1 / fs)
        nominal, i0, i1 = [], [], []
        for nom, fc in zip(NOMINAL_THIRD_OCTAVES, EXACT_THIRD_OCTAVES, strict=True):
            if fc < fmin or fc > min(fmax, 0.45 * fs):
                continue
            lo, hi = band_edges(fc)
            a, b = np.searchsorted(f, [lo, hi])
            nominal.append(float(nom))
            i0.append(int(a))
            i1.append(int(b))
        got = (w, n * np.sum(w**2), nominal, np.array(i0, dtype=np.intp), np.array(i1, dtype=np.intp))
        if len(_BANDS) < 8:
            _BANDS[key] = got
    return got


def third_octave_levels(x: np.ndarray, fs: int, k_db: float, *, fmin: float = 19.0,
                        fmax: float = 20_000.0) -> tuple[list[float], list[float]]:
    """Z-weighted 1/3-octave band levels (dB SPL, Leq over ``x``) from one Hann-windowed FFT.

    ``k_db`` converts 10*log10(mean square) to dB SPL. Returns (nominal centre frequencies, levels).
    Bands whose centre is outside [fmin, min(fmax, 0.45 fs)] are left out.
    """
    x = np.asarray(x, dtype=np.float64)
    w, norm, nominal, i0, i1 = _bands(x.size, fs, fmin, fmax)
    spec = sfft.rfft(x * w)  # the same values as numpy.fft.rfft (both pocketfft), in half its time
    p = (np.abs(spec) ** 2) * 2.0 / norm
    p[0] /= 2
    cum = np.concatenate([[0.0], np.cumsum(p)])
    levels = 10 * np.log10(np.maximum(cum[i1] - cum[i0], 1e-30)) + k_db
    return list(nominal), [round(v, 2) for v in levels.tolist()]
