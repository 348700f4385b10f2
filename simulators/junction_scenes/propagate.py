"""Outdoor propagation from a moving point source to the pole microphone, block by block.

The source's emitted signal is cut into 2048-sample Hann blocks (42.7 ms at 48 kHz, hop 1024). For each block
the emission time heard at the block centre and the local playback rate 1 / (1 + (dr/dt) / c) come from the
trajectory; the block is resampled at that rate (linear interpolation, one rate per block: Doppler), filtered
in the frequency domain by that block's propagation (spherical spreading, ISO 9613-1 air absorption at the
block's range, a ground reflection with a Delany-Bazley reflection coefficient, Maekawa screening while a
stopped bus or van is in the way) and overlap-added. Microphone at (0, 0, mic_h); lanes run along x at y."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

C = 343.0
CTRL = 100  # trajectory control rate, Hz
HOP = 1024
BLOCK = 2 * HOP
NFFT = 4096
PRE = 256  # room for the zero-phase filters' pre-ringing


@dataclass
class Path:
    t0: float  # emission time of the first control point, s
    x: np.ndarray  # along the street, m (control rate)
    y: np.ndarray  # lateral distance from the pole, m
    z: float  # source height, m

    def shifted(self, dy: float) -> Path:
        return Path(self.t0, self.x, self.y + dy, self.z)

    def closest_m(self) -> float:
        return float(np.min(np.hypot(self.x, self.y)))


@dataclass
class Air:
    temperature_c: float
    humidity_pct: float

    def alpha_db_per_m(self, f: np.ndarray) -> np.ndarray:
        """ISO 9613-1 pure-tone attenuation coefficient at 101.325 kPa."""
        t, t0, t01 = self.temperature_c + 273.15, 293.15, 273.16
        h = self.humidity_pct * 10 ** (-6.8346 * (t01 / t) ** 1.261 + 4.6151)
        fro = 24 + 4.04e4 * h * (0.02 + h) / (0.391 + h)
        frn = (t / t0) ** -0.5 * (9 + 280 * h * math.exp(-4.170 * ((t / t0) ** (-1 / 3) - 1)))
        f2 = f * f
        return 8.686 * f2 * (1.84e-11 * (t / t0) ** 0.5 + (t / t0) ** -2.5 * (
            0.01275 * math.exp(-2239.1 / t) / (fro + f2 / fro) + 0.1068 * math.exp(-3352.0 / t) / (frn + f2 / frn)))


def delany_bazley(f: np.ndarray, sigma_kpa: float) -> np.ndarray:
    """Normalised surface impedance of a ground of flow resistivity sigma (kPa s/m^2), e^{jwt} convention."""
    x = 1.2 * np.maximum(f, 1.0) / (sigma_kpa * 1000.0)
    return 1 + 0.0571 * x ** -0.754 - 1j * 0.087 * x ** -0.732


@dataclass
class Screen:
    """A stopped bus or parked van between the lane and the pole: a thin barrier at lateral y from x0 to x1,
    height h, present from t_on to t_off (reception time)."""
    y: float
    x0: float
    x1: float
    h: float
    t_on: float
    t_off: float


_TABLES: dict = {}
D_STEPS = np.geomspace(0.5, 8000.0, 1400)  # distances of the air-absorption table (0.7 % steps)
SIN_STEPS = np.linspace(0.0, 1.0, 257)  # sin(grazing angle) of the reflection-coefficient table


def _air_table(air: Air, fs: int) -> np.ndarray:
    key = ("air", round(air.temperature_c, 6), round(air.humidity_pct, 6), fs)
    if key not in _TABLES:
        f = np.fft.rfftfreq(NFFT, 1 / fs)
        neper = air.alpha_db_per_m(f) * math.log(10) / 20
        _TABLES[key] = np.exp(-D_STEPS[:, None] * neper[None, :]).astype(np.float32)
    return _TABLES[key]


def _refl_table(sigma_kpa: float, fs: int) -> np.ndarray:
    key = ("refl", round(sigma_kpa, 6), fs)
    if key not in _TABLES:
        z = delany_bazley(np.fft.rfftfreq(NFFT, 1 / fs), sigma_kpa)[None, :] * SIN_STEPS[:, None]
        _TABLES[key] = ((z - 1) / (z + 1)).astype(np.complex64)
    if len(_TABLES) > 16:
        _TABLES.pop(next(iter(_TABLES)))
    return _TABLES[key]


def _read(sig: np.ndarray, fs: int, t0: float, tau: np.ndarray, t_rx: np.ndarray, tc: np.ndarray) -> tuple:
    """Blocks of the emitted signal heard around reception times ``tc``: each read at one playback rate
    (dtau/dt = 1 / (1 + (dr/dtau) / c)) around the emission time heard at its centre."""
    tau_c = np.interp(tc, t_rx, tau)
    rate = np.interp(tc, t_rx, np.gradient(tau) / np.maximum(np.gradient(t_rx), 1e-9))
    # ``sig`` carries two zeros at each end (see render): positions outside it read silence
    pos = (tau_c[:, None] - t0) * fs + 2.0 + rate[:, None] * (np.arange(BLOCK) - HOP)[None, :]
    np.clip(pos, 0.0, sig.size - 1.5, out=pos)
    i0 = pos.astype(np.int64)
    frac = (pos - i0).astype(np.float32)
    lo = sig[i0]
    blocks = lo + (sig[i0 + 1] - lo) * frac
    frames = np.zeros((tc.size, NFFT), np.float32)
    frames[:, PRE:PRE + BLOCK] = blocks * _HANN[None, :]
    return tau_c, frames


_HANN = np.hanning(BLOCK + 1)[:-1].astype(np.float32)


def render(sig: np.ndarray, fs: int, path: Path, mic_h: float, air: Air, sigma_kpa: float,
           screen: Screen | None, n_out: int, origin: float = 0.0) -> tuple[int, np.ndarray]:
    """The pressure at the microphone from ``sig`` (emitted from path.t0 on, 1 m reference) as (first output
    sample, samples), output sample 0 being time ``origin``; only the part inside [0, n_out) is returned.
    Two arrivals: the direct sound and its image under the ground (own delay and Doppler), the latter times
    the plane-wave reflection coefficient of the Delany-Bazley ground at its grazing angle."""
    sig = np.concatenate([np.zeros(2, np.float32), np.asarray(sig, np.float32), np.zeros(2, np.float32)])
    tau = path.t0 + np.arange(path.x.size) / CTRL
    rh2 = path.x ** 2 + path.y ** 2
    d1 = np.sqrt(rh2 + (mic_h - path.z) ** 2)
    d2 = np.sqrt(rh2 + (mic_h + path.z) ** 2)
    t1, t2 = tau + d1 / C, tau + d2 / C
    a = max(int(math.floor((t1[0] - origin) * fs)), 0)
    b = min(int(math.ceil((t1[-1] - origin) * fs)), n_out)
    if b - a < BLOCK:
        return a, np.zeros(0)
    nb = (b - a) // HOP + 2
    tc_all = (a - HOP + np.arange(nb) * HOP + HOP) / fs + origin
    air_t, refl_t = _air_table(air, fs), _refl_table(sigma_kpa, fs)
    f = np.fft.rfftfreq(NFFT, 1 / fs)
    out = np.zeros(nb * HOP + NFFT)
    for c0 in range(0, nb, 192):
        tc = tc_all[c0:c0 + 192]
        tau1, fr1 = _read(sig, fs, path.t0, tau, t1, tc)
        tau2, fr2 = _read(sig, fs, path.t0, tau, t2, tc)
        e1, e2 = np.interp(tau1, tau, d1), np.interp(tau2, tau, d2)
        sin_psi = (mic_h + path.z) / e2
        k1 = np.clip(np.searchsorted(D_STEPS, e1), 0, D_STEPS.size - 1)
        k2 = np.clip(np.searchsorted(D_STEPS, e2), 0, D_STEPS.size - 1)
        ks = np.clip(np.rint(sin_psi * (SIN_STEPS.size - 1)).astype(int), 0, SIN_STEPS.size - 1)
        spec = sfft.rfft(fr1, axis=1) * (air_t[k1] / e1[:, None].astype(np.float32))
        spec += sfft.rfft(fr2, axis=1) * (air_t[k2] * refl_t[ks] / e2[:, None].astype(np.float32))
        if screen is not None:
            xc, yc = np.interp(tau1, tau, path.x), np.interp(tau1, tau, path.y)
            spec *= _screen_gain(screen, f, xc, yc, path.z, mic_h, e1, tc)
        y = sfft.irfft(spec, NFFT, axis=1)
        for q in range(tc.size):  # out[0] is output sample a - HOP - PRE
            p = (c0 + q) * HOP
            out[p:p + NFFT] += y[q]
    return a, out[HOP + PRE:HOP + PRE + (b - a)]


def _screen_gain(s: Screen, f, xc, yc, zs, mic_h, d1, tc) -> np.ndarray:
    g = np.ones((xc.size, f.size))
    for i in np.nonzero((tc >= s.t_on) & (tc <= s.t_off) & (yc > s.y))[0]:
        frac = s.y / yc[i]
        xb = xc[i] * frac
        zb = mic_h + (zs - mic_h) * frac
        if not (s.x0 <= xb <= s.x1) or zb >= s.h:
            continue
        top = np.array([xb, s.y, s.h])
        src = np.array([xc[i], yc[i], zs])
        mic = np.array([0.0, 0.0, mic_h])
        delta = np.linalg.norm(src - top) + np.linalg.norm(top - mic) - d1[i]
        n = 2 * delta * f / C
        att_db = np.minimum(10 * np.log10(3 + 20 * n), 20.0)
        g[i] = 10 ** (-att_db / 20)
    return g
