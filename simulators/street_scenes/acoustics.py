"""Propagation and measurement for the independent street-scene family (no gateway code is used).

Propagation (a moving point source, straight line at constant speed):

- the source emits pressure ``s(tau)`` referred to 1 m; the receiver hears at time ``t`` what was emitted at
  the retarded time ``tau(t)``, solved in closed form from ``c (t - tau) = |x_src(tau) - x_mic|``
  (a quadratic in ``tau``), so the Doppler shift is a consequence of the geometry, not an applied law;
- ``s`` is read at the fractional positions ``tau(t) * fs`` with a 12-tap Kaiser-windowed sinc
  (fractional-delay resampling), and divided by the path length ``r = c (t - tau)`` (1/r spreading);
- air absorption (ISO 9613-1 coefficients, 20 degC, 70 % RH, 101.325 kPa) is exact for a stationary source and,
  for a moving one, a cross-fade between the unattenuated signal and the signal attenuated over a reference
  path, weighted by ``r / r_ref`` (exact at 0 and r_ref, first order in between);
- an optional image source under a hard road (reflection coefficient ``q``) adds the ground reflection.

Measurement (truth for labels): A-weighting applied as the analogue IEC 61672 magnitude in the frequency
domain (zero phase), squared, Fast exponential averaging (tau = 0.125 s) with a one-pole recursion,
level constant ``full_scale_db + 3.01`` (a full-scale sine is ``full_scale_db``).
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import signal

C_AIR = 343.2  # m/s at 20 degC
TAU_F = 0.125
_TAPS = 12
_FRAC = 1024


def air_absorption_db_per_m(f: np.ndarray, temp_c: float = 20.0, rh: float = 70.0) -> np.ndarray:
    """ISO 9613-1 pure-tone atmospheric absorption coefficient, dB per metre (at 101.325 kPa)."""
    f = np.asarray(f, dtype=float)
    t, t0, t01 = temp_c + 273.15, 293.15, 273.16
    h = rh * 10 ** (-6.8346 * (t01 / t) ** 1.261 + 4.6151)
    fr_o = 24 + 4.04e4 * h * (0.02 + h) / (0.391 + h)
    fr_n = (t / t0) ** -0.5 * (9 + 280 * h * np.exp(-4.170 * ((t / t0) ** (-1 / 3) - 1)))
    return 8.686 * f**2 * (1.84e-11 * (t / t0) ** 0.5 + (t / t0) ** -2.5 * (
        0.01275 * np.exp(-2239.1 / t) / (fr_o + f**2 / fr_o) + 0.1068 * np.exp(-3352.0 / t) / (fr_n + f**2 / fr_n)))


def fft_filter(x: np.ndarray, fs: int, gain_of_f) -> np.ndarray:
    """Zero-phase filtering by a real gain curve ``gain_of_f(f)`` (with 0.25 s of padding against wrap)."""
    n = x.size
    nf = sfft.next_fast_len(n + fs // 4, real=True)
    spec = sfft.rfft(np.asarray(x, dtype=np.float32), nf)  # single precision: 1e-6 relative, 2x faster
    spec *= gain_of_f(np.fft.rfftfreq(nf, 1.0 / fs)).astype(np.float32)
    return sfft.irfft(spec, nf)[:n].astype(np.float64)


def absorb(x: np.ndarray, fs: int, dist_m: float) -> np.ndarray:
    return fft_filter(x, fs, lambda f: 10 ** (-air_absorption_db_per_m(f) * dist_m / 20))


def _kernel_table() -> np.ndarray:
    """table[j, k]: weight of tap k (offsets -5..+6) for fractional position j/_FRAC."""
    frac = np.arange(_FRAC) / _FRAC
    offs = np.arange(-(_TAPS // 2) + 1, _TAPS // 2 + 1)
    d = offs[None, :] - frac[:, None]
    half = _TAPS / 2
    win = np.i0(7.0 * np.sqrt(np.clip(1 - (d / half) ** 2, 0, None))) / np.i0(7.0)
    tab = np.sinc(d) * win
    return (tab / tab.sum(axis=1, keepdims=True)).astype(np.float32)


_TABLE_T = np.ascontiguousarray(_kernel_table().T)  # [tap, fraction]


def frac_read(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Band-limited read of the 1-D signal ``x`` at fractional sample positions (zero outside ``x``)."""
    pad = _TAPS
    x = np.asarray(x, dtype=np.float32)
    xp = np.concatenate([np.zeros(pad, np.float32), x, np.zeros(pad, np.float32)])
    pos = np.clip(pos, -pad / 2, x.size - 1 + pad / 2)
    i0 = np.floor(pos)
    fi = ((pos - i0) * _FRAC).astype(np.intp)
    np.minimum(fi, _FRAC - 1, out=fi)
    base = i0.astype(np.intp) + (pad - _TAPS // 2 + 1)
    out = np.zeros(pos.size, np.float32)
    for k in range(_TAPS):
        out += _TABLE_T[k].take(fi) * xp.take(base + k)
    return out.astype(np.float64)


def emission_time(t: np.ndarray, t_cpa: float, v: float, dist: float) -> np.ndarray:
    """Retarded time: the emission time heard at ``t`` from a source moving at ``v`` along a straight line
    whose closest point (at emission time ``t_cpa``) is ``dist`` from the receiver."""
    big_t = t - t_cpa
    c2, v2 = C_AIR * C_AIR, v * v
    root = np.sqrt(c2 * (v2 * big_t * big_t + dist * dist) - v2 * dist * dist)
    return t_cpa + (c2 * big_t - root) / (c2 - v2) if v else t - dist / C_AIR


def render(src: np.ndarray, src_t0: float, fs: int, t0: float, n: int, *, t_cpa: float, v: float,
           lane_m: float, h_src: float, h_mic: float, ground_q: float | None,
           absorbed: tuple[float, np.ndarray] | None = None) -> np.ndarray:
    """Pressure at the microphone (samples ``t0 + i/fs``, i < n) of a source emitting ``src`` (referred to 1 m,
    sample k emitted at ``src_t0 + k/fs``), passing at speed ``v`` with closest approach at ``t_cpa``.
    ``absorbed``: ``(r_ref, src attenuated over r_ref)`` when the caller already has it (moving sources)."""
    t = t0 + np.arange(n) / fs
    paths = [(np.hypot(lane_m, h_mic - h_src), 1.0)]
    if ground_q:
        paths.append((np.hypot(lane_m, h_mic + h_src), ground_q))
    if absorbed is None:
        r_far = np.hypot(paths[0][0], abs(v) * max(abs(t[0] - t_cpa), abs(t[-1] - t_cpa)))
        r_ref = max(200.0, float(r_far)) if v else paths[0][0]
        absorbed = (r_ref, absorb(src, fs, r_ref))
    r_ref, src_abs = absorbed
    # the absorption cross-fade is done in the emission domain, where the path length is known geometry
    tau_src = src_t0 + np.arange(src.size) / fs
    w = np.clip(np.hypot(paths[0][0], v * (tau_src - t_cpa)) / r_ref, 0.0, 1.0)
    mixed = (src * (1 - w) + src_abs * w).astype(np.float32)
    out = np.zeros(n)
    for dist, q in paths:
        tau = emission_time(t, t_cpa, v, dist)
        out += q * frac_read(mixed, (tau - src_t0) * fs) / (C_AIR * (t - tau))
    return out


# ----------------------------------------------------------------------------- measuring the truth
def a_gain(f: np.ndarray) -> np.ndarray:
    """IEC 61672-1 Annex E analogue A-weighting magnitude (linear), 0 dB at 1 kHz."""
    f2 = np.asarray(f, dtype=float) ** 2
    f1, f2p, f3, f4 = 20.598997, 107.65265, 737.86223, 12194.217
    num = f4**2 * f2**2
    den = (f2 + f1**2) * np.sqrt((f2 + f2p**2) * (f2 + f3**2)) * (f2 + f4**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(den > 0, num / den, 0.0)
    return g * 10 ** (1.9997 / 20)


def a_weight(x: np.ndarray, fs: int) -> np.ndarray:
    return fft_filter(np.asarray(x, dtype=float), fs, a_gain)


def laf_db(x: np.ndarray, fs: int, full_scale_db: float) -> np.ndarray:
    """A-weighted Fast level of ``x`` (full-scale units) at every sample, dB SPL."""
    return laf_and_sel_db(x, fs, full_scale_db)[0]


def laf_and_sel_db(x: np.ndarray, fs: int, full_scale_db: float) -> tuple[np.ndarray, float]:
    """A-weighted Fast level at every sample and the sound exposure level (A-weighted energy re 1 s)."""
    y = a_weight(x, fs)
    y2 = y * y
    a = np.exp(-1.0 / (fs * TAU_F))
    ms = signal.lfilter([1 - a], [1, -a], y2)
    k = full_scale_db + 10 * np.log10(2.0)
    return 10 * np.log10(np.maximum(ms, 1e-30)) + k, float(10 * np.log10(max(float(np.sum(y2)) / fs, 1e-30)) + k)


def laeq_db(x: np.ndarray, fs: int, full_scale_db: float) -> float:
    y = a_weight(x, fs)
    return float(10 * np.log10(max(float(np.mean(y * y)), 1e-30)) + full_scale_db + 10 * np.log10(2.0))


def sel_db(x: np.ndarray, fs: int, full_scale_db: float) -> float:
    """Sound exposure level (A-weighted energy integrated over the whole signal, re 1 s)."""
    y = a_weight(x, fs)
    return float(10 * np.log10(max(float(np.sum(y * y)) / fs, 1e-30)) + full_scale_db + 10 * np.log10(2.0))


def db_to_rms(level_db: float, full_scale_db: float) -> float:
    """RMS (full-scale units) of a signal whose level is ``level_db`` (full-scale sine = full_scale_db)."""
    return 10 ** ((level_db - full_scale_db) / 20) / np.sqrt(2.0)
