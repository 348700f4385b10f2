"""IEC 61672-1 frequency weightings: the analog definitions and their digital SOS filters.

The digital filters are the bilinear transform (no pre-warping) of the Annex E analog prototypes with the
exact pole frequencies. At 48 kHz the A filter stays inside the class 1 acceptance limits at every
1/3-octave frequency from 10 Hz to 20 kHz (its bilinear droop is -1.2 dB at 10 kHz, limit -3.6 dB).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import signal

from gateway.noise.errors import ConfigError

F1, F2, F3, F4 = 20.598997, 107.65265, 737.86223, 12194.217  # Hz, IEC 61672-1 E.4.1 (exact values)
A1000 = -1.9997  # dB: A gain term at 1 kHz before normalisation
C1000 = -0.0619  # dB
MIN_FS = 44_100  # below this the A filter fails class 1 above ~5 kHz: refuse it for evidence

# IEC 61672-1:2013 nominal 1/3-octave frequencies 10 Hz .. 20 kHz and their exact base-10 values.
NOMINAL_THIRD_OCTAVES = (10, 12.5, 16, 20, 25, 31.5, 40, 50, 63, 80, 100, 125, 160, 200, 250, 315, 400, 500,
                         630, 800, 1000, 1250, 1600, 2000, 2500, 3150, 4000, 5000, 6300, 8000, 10000,
                         12500, 16000, 20000)
EXACT_THIRD_OCTAVES = tuple(1000.0 * 10 ** (k / 10) for k in range(-20, 14))


def a_weighting_db(f: np.ndarray | float) -> np.ndarray:
    """Analog A-weighting (IEC 61672-1 E.6), dB, 0 dB at 1 kHz."""
    f2 = np.asarray(f, dtype=float) ** 2
    with np.errstate(divide="ignore"):
        num = F4**2 * f2**2
        den = (f2 + F1**2) * np.sqrt(f2 + F2**2) * np.sqrt(f2 + F3**2) * (f2 + F4**2)
        return 20 * np.log10(num / den) - A1000


def c_weighting_db(f: np.ndarray | float) -> np.ndarray:
    """Analog C-weighting (IEC 61672-1 E.6), dB, 0 dB at 1 kHz."""
    f2 = np.asarray(f, dtype=float) ** 2
    with np.errstate(divide="ignore"):
        return 20 * np.log10(F4**2 * f2 / ((f2 + F1**2) * (f2 + F4**2))) - C1000


def _check_fs(fs: int) -> None:
    if not isinstance(fs, int) or fs < MIN_FS or fs > 384_000:
        raise ConfigError(f"sample rate {fs!r} Hz: A/C weighting needs an integer rate of 44100..384000 Hz")


def _digital(zeros: list[float], poles: list[float], gain_db: float, fs: int) -> np.ndarray:
    w = 2 * np.pi
    p = [-w * f for f in poles]
    k = (w * F4) ** 2 * 10 ** (-gain_db / 20)
    zd, pd, kd = signal.bilinear_zpk(zeros, p, k, fs)
    sos = signal.zpk2sos(zd, pd, kd)
    # normalise to exactly 0 dB at 1 kHz
    _, h = signal.sosfreqz(sos, worN=[1000.0], fs=fs)
    sos[0, :3] /= abs(h[0])
    return sos


@functools.lru_cache(maxsize=8)
def a_weights(n_bins: int, df: float) -> np.ndarray:
    """A-weighting (power, analog curve) of spectrum bins 0..n_bins-1 of width ``df`` Hz; bin 0 gets 0 (cached
    per spectrum layout: not to be written)."""
    return (10 ** (a_weighting_db(np.arange(n_bins) * df) / 10)).astype(np.float32)


def a_weighting_sos(fs: int = 48_000) -> np.ndarray:
    """Digital A-weighting as second-order sections, normalised to 0 dB at 1 kHz."""
    _check_fs(fs)
    return _digital([0.0] * 4, [F1, F1, F2, F3, F4, F4], A1000, fs)


def c_weighting_sos(fs: int = 48_000) -> np.ndarray:
    """Digital C-weighting as second-order sections, normalised to 0 dB at 1 kHz."""
    _check_fs(fs)
    return _digital([0.0] * 2, [F1, F1, F4, F4], C1000, fs)


def response_db(sos: np.ndarray, freqs: np.ndarray | list[float], fs: int) -> np.ndarray:
    _, h = signal.sosfreqz(sos, worN=np.asarray(freqs, dtype=float), fs=fs)
    return 20 * np.log10(np.abs(h))
