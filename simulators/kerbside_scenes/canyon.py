"""Street-canyon propagation, the MEMS microphone and this family's own A-weighted Fast meter.

Geometry (metres): x along the street (0 at the microphone), y across it (the lane at y = d, the facade behind
the microphone at y = -a, the facade across the street at y = W - a), z up (the microphone at h_m). Each source
reaches the microphone by up to four paths (image sources): direct, the road (factor ``ground_q``), the facade
behind the microphone and the facade across (factor ``facade_r``, half of it above ``facade_hf_hz``).

Doppler is a time-varying fractional delay: the arrival time ``t = tau + r(tau)/c`` of every emission time on a
1 ms grid is computed from the trajectory (any trajectory, stops and launches included), inverted by
interpolation, and the emitted signal is read at the emission sample positions (4-point cubic for the
direct path, linear for reflections). Amplitude 1/r, read the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import signal

C_AIR = 343.0
CTRL_HZ = 1000  # trajectory and control-track rate
K_DB = 120.0 + 10 * math.log10(2.0)  # 10 log10(mean square) + K_DB = dB SPL (full scale 120 dB)
TAU_FAST = 0.125


@dataclass(frozen=True)
class Street:
    d: float  # lane distance (horizontal)
    mic_h: float
    setback: float
    width: float
    open_side: bool
    facade_r: float
    facade_hf: float
    ground_q: float

    def at_7p5(self) -> Street:
        """The truth street: the lane at 7.5 m, the far facade the same distance beyond the lane."""
        beyond = self.width - self.setback - self.d
        return replace(self, d=7.5, width=self.setback + 7.5 + beyond)

    def paths(self, src_h: float) -> list[tuple[float, float, float, bool]]:
        """(y distance, z difference, pressure factor, facade filter) per arrival."""
        dz = src_h - self.mic_h
        out = [(self.d, dz, 1.0, False), (self.d, -src_h - self.mic_h, self.ground_q, False),
               (self.d + 2 * self.setback, dz, self.facade_r, True)]
        if not self.open_side:
            out.append((2 * (self.width - self.setback) - self.d, dz, self.facade_r, True))
        return out


def _cubic(ep: np.ndarray, i: np.ndarray, f: np.ndarray) -> np.ndarray:
    """4-point cubic (Catmull-Rom) fractional read of the padded signal ``ep`` at ``i + f``."""
    xm, x0, x1, x2 = ep[i - 1], ep[i], ep[i + 1], ep[i + 2]
    return x0 + 0.5 * f * (x1 - xm + f * (2 * xm - 5 * x0 + 4 * x1 - x2 + f * (3 * (x0 - x1) + x2 - xm)))


def _linear(ep: np.ndarray, i: np.ndarray, f: np.ndarray) -> np.ndarray:
    x0 = ep[i]
    return x0 + (ep[i + 1] - x0) * f


def _upsample(c: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Linear interpolation of control values ``c`` (one per ``frac.size`` samples) to the sample rate."""
    c = c.astype(np.float32)
    return (c[:-1, None] + (c[1:] - c[:-1])[:, None] * frac[None, :]).ravel()


def propagate(e: np.ndarray, fs: int, x: np.ndarray, src_h: float, street: Street) -> np.ndarray:
    """Pressure at the microphone (1/r per metre of source strength) from emitted signal ``e`` (samples at
    emission times 0, 1/fs, ...) of a source moving along the lane at positions ``x`` (1 kHz, same start).
    The output has the length of ``e`` and starts at the same time."""
    n = e.size
    m = fs // CTRL_HZ
    tau = np.arange(x.size) / CTRL_HZ
    kc = n // m + 2  # output control points (1 kHz); sample values by linear interpolation between them
    t_c = np.arange(kc) / CTRL_HZ
    frac = (np.arange(m) / m).astype(np.float32)
    paths = street.paths(src_h)
    pad = int(math.sqrt(float(np.max(x * x)) + max(y * y + z * z for y, z, _, _ in paths)) / C_AIR * fs) + 4
    idx = np.arange(pad, pad + n)
    out = np.zeros(n, np.float32)
    refl = np.zeros(n, np.float32)
    ep = np.concatenate([np.zeros(pad, np.float32), e.astype(np.float32), np.zeros(4, np.float32)])
    for y, z, g, facade in paths:
        r = np.sqrt(x * x + y * y + z * z)
        t_arr = tau + r / C_AIR
        # emission sample minus output sample (minus the delay in samples), and the 1/r amplitude
        lag_c = np.interp(t_c, t_arr, tau * fs) - t_c * fs
        amp_c = np.interp(t_c, t_arr, g / r, left=0.0, right=0.0)
        lag = _upsample(lag_c, frac)[:n]
        amp = _upsample(amp_c, frac)[:n]
        fl = np.floor(lag)
        i = idx + fl.astype(np.int64)
        f = lag - fl
        if facade:
            refl += _linear(ep, i, f) * amp
        elif g == 1.0:
            out += _cubic(ep, i, f) * amp
        else:
            out += _linear(ep, i, f) * amp
    p = math.exp(-2 * math.pi * street.facade_hf / fs)
    out += 0.5 * refl + 0.5 * signal.lfilter([1 - p], [1, -p], refl).astype(np.float32)
    return out


def air_lowpass(x: np.ndarray, fs: int, dist_m: float) -> np.ndarray:
    """Crude air absorption for far sources: a first-order low-pass whose corner falls with distance."""
    fc = min(max(2.0e6 / max(dist_m, 1.0), 1200.0), 0.4 * fs)
    b, a = signal.butter(1, fc, fs=fs)
    return signal.lfilter(b, a, x).astype(np.float32)


def mems(x: np.ndarray, fs: int, hp_hz: float, peak_db: float, peak_hz: float) -> np.ndarray:
    """MEMS microphone: a second-order high-pass (vent) and the port's Helmholtz resonance (peaking biquad)."""
    hp = signal.butter(2, hp_hz, "highpass", fs=fs, output="sos")
    w0, q = 2 * math.pi * peak_hz / fs, 1.6
    big_a, alpha = 10 ** (peak_db / 40), math.sin(w0) / (2 * q)
    b = [1 + alpha * big_a, -2 * math.cos(w0), 1 - alpha * big_a]
    a = [1 + alpha / big_a, -2 * math.cos(w0), 1 - alpha / big_a]
    sos = np.vstack([hp, np.concatenate([np.array(b) / a[0], np.array(a) / a[0]])])
    return signal.sosfilt(sos, x).astype(np.float32)


# ------------------------------------------------------------------ A-weighted Fast meter (own implementation)

_SOS: dict[int, np.ndarray] = {}


def a_sos(fs: int) -> np.ndarray:
    """IEC 61672-1 A-weighting: the analogue poles (20.6, 107.7, 737.9, 12194 Hz) by the bilinear transform,
    normalised to 0 dB at 1 kHz."""
    if fs not in _SOS:
        p = [-2 * math.pi * f for f in (20.598997, 20.598997, 107.65265, 737.86223, 12194.217, 12194.217)]
        z, pd, k = signal.bilinear_zpk([0, 0, 0, 0], p, 1.0, fs)
        _, h = signal.freqz_zpk(z, pd, k, worN=[1000.0], fs=fs)
        _SOS[fs] = signal.zpk2sos(z, pd, k / abs(h[0]))
    return _SOS[fs]


def fast_ticks(y: np.ndarray, fs: int) -> np.ndarray:
    """Fast mean square of the A-weighted ``y`` at the end of every 1 ms tick (exact exponential recursion)."""
    m = fs // 1000
    n = y.size // m
    if n == 0:
        return np.zeros(0)
    a = math.exp(-1.0 / (fs * TAU_FAST))
    w = (1 - a) * a ** (m - 1 - np.arange(m))
    u = (y[: n * m] ** 2).reshape(n, m) @ w
    out, _ = signal.lfilter([1.0], [1.0, -a**m], u, zi=[0.0])
    return out


def db(ms) -> np.ndarray | float:
    return 10 * np.log10(np.maximum(ms, 1e-30)) + K_DB


def laeq_db(x: np.ndarray, fs: int) -> float:
    y = signal.sosfilt(a_sos(fs), x.astype(np.float64))
    return float(db(np.mean(y * y)))


def level_summary(x: np.ndarray, fs: int, t0: float) -> dict:
    """LAFmax, its time, the span within 20 dB of it, the SEL and a 10 Hz LAFmax trace of one source."""
    y = signal.sosfilt(a_sos(fs), x.astype(np.float64))
    ticks = fast_ticks(y, fs)
    k = int(np.argmax(ticks))
    lmax = float(db(ticks[k]))
    above = np.flatnonzero(db(ticks) >= lmax - 20.0)
    sel = float(db(np.sum(y * y) / fs))
    nf = ticks.size // 100
    trace = db(ticks[: nf * 100].reshape(nf, 100).max(axis=1)) if nf else np.zeros(0)
    return {"lafmax": lmax, "t_peak": t0 + (k + 1) / 1000, "t_start": t0 + float(above[0] + 1) / 1000,
            "t_end": t0 + float(above[-1] + 1) / 1000, "sel": sel, "trace": [float(v) for v in trace]}
