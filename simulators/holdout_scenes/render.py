"""Propagation of a point source to the microphone.

A source moves on a straight lane, x(tau) = x0 + v (tau - t_cpa), at perpendicular distance D (the lane
distance and the height difference) from the microphone. The emission time tau of each reception time t solves
t = tau + r(tau)/c in closed form, and the source is *evaluated* at those emission times: tonal components as
cos(order * phase(tau)) from the source's cumulative phase (so Doppler needs no fractional-delay interpolator),
broadband parts through their envelopes at tau, and impulsive events placed at their arrival times.
Propagation is 1/r spherical spreading times excess attenuation: ISO 9613-1 air absorption (15 degC, 70 % RH)
per tonal component at its own frequency and range, and an optional ground reflection (image source, plane-wave
reflection factor Q applied with the path-length delay). The source's rear directivity is a cardioid term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

C_AIR = 343.0
CTRL_HOP = 80  # samples of the reduced rate per control point


@dataclass(frozen=True)
class Path:
    lane_m: float           # horizontal distance from the lane to the microphone
    h_src: float
    h_mic: float
    t_cpa: float            # time the source passes x = 0
    v: float = 0.0          # m/s (0: stationary at x0)
    x0: float = 0.0

    def range_at(self, tau: float) -> tuple[float, float]:
        """Range and cos(angle) of the source at emission time tau."""
        x = self.x0 + self.v * (tau - self.t_cpa)
        r = float(np.sqrt(self.lane_m ** 2 + (self.h_mic - self.h_src) ** 2 + x * x))
        return r, -x / r

    def geometry(self, t: np.ndarray, image: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Emission time, range and cos(angle between velocity and source->mic) for reception times t."""
        dh = (self.h_src + self.h_mic) if image else (self.h_mic - self.h_src)
        d2 = self.lane_m ** 2 + dh ** 2
        if self.v == 0.0:
            r0 = float(np.sqrt(d2 + self.x0 ** 2))
            return t - r0 / C_AIR, np.full(t.shape, r0), np.full(t.shape, -self.x0 / r0)
        c, v = C_AIR, self.v
        s = t - self.t_cpa
        u = (c * c * s - np.sqrt(c * c * v * v * s * s + d2 * (c * c - v * v))) / (c * c - v * v)
        r = c * (s - u)
        x = self.x0 + v * u
        return self.t_cpa + u, r, -x / r


def air_absorption_db_per_m(f: np.ndarray) -> np.ndarray:
    """ISO 9613-1 pure-tone attenuation coefficient at 15 degC, 70 % RH, 101.325 kPa (dB/m)."""
    t, t0, t01 = 288.15, 293.15, 273.16
    psat = 10 ** (-6.8346 * (t01 / t) ** 1.261 + 4.6151)
    h = 70.0 * psat
    fro = 24 + 4.04e4 * h * (0.02 + h) / (0.391 + h)
    frn = (t / t0) ** -0.5 * (9 + 280 * h * np.exp(-4.170 * ((t / t0) ** (-1 / 3) - 1)))
    f2 = np.asarray(f, dtype=float) ** 2
    return 8.686 * f2 * (1.84e-11 * (t / t0) ** 0.5 + (t / t0) ** -2.5 * (
        0.01275 * np.exp(-2239.1 / t) / (fro + f2 / fro) + 0.1068 * np.exp(-3352.0 / t) / (frn + f2 / frn)))


def reduced_factor(fs: int) -> int:
    """Tonal components are synthesised at fs / q (12 kHz at 48 kHz) and resampled up."""
    for q in (4, 3, 2):
        if fs % q == 0 and fs // q >= 11_000:
            return q
    return 1


def _ramp_up(a: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of control-rate rows (K x M+1) to K x n samples (hop CTRL_HOP)."""
    ramp = np.arange(CTRL_HOP) / CTRL_HOP
    out = a[:, :-1, None] + np.diff(a, axis=-1)[:, :, None] * ramp
    return out.reshape(a.shape[0], -1)[:, :n]


CHUNK_CTRL = 128  # control points per synthesis chunk (keeps the K x chunk arrays in cache)


def _tonal(src, path: Path, t_r: np.ndarray, fs_r: int) -> np.ndarray:
    """Sum of the source's harmonic families, each evaluated by Horner's scheme in z = exp(i phase(tau))."""
    n = t_r.size
    m = int(np.ceil(n / CTRL_HOP))
    t_c = t_r[0] + np.arange(m + 1) * CTRL_HOP / fs_r
    tau_c, r_c, cos_c = path.geometry(t_c)
    tau_r, _, _ = path.geometry(t_r)
    gain_c = src.directivity(cos_c) / r_c
    y = np.zeros(n)
    for group in src.tonal_groups():
        orders, amps, f_base = group.control(tau_c)     # K, K x (m+1), (m+1)
        if not len(orders):
            continue
        f = orders[:, None] * f_base[None, :]
        amps = amps * gain_c * 10 ** (-air_absorption_db_per_m(f) * r_c / 20)
        amps = amps * np.clip((0.45 * fs_r - f) / (0.05 * fs_r), 0.0, 1.0)  # fade out before Nyquist
        coef = np.exp(1j * np.asarray(group.offsets))
        gaps = np.diff(orders).astype(int)
        phase = group.phase(tau_r)
        for c0 in range(0, m, CHUNK_CTRL):
            c1 = min(m, c0 + CHUNK_CTRL)
            s0, s1 = c0 * CTRL_HOP, min(n, c1 * CTRL_HOP)
            a = _ramp_up(amps[:, c0:c1 + 1], s1 - s0)
            ph = phase[s0:s1]
            zg = {g: np.exp(1j * g * ph) for g in set(gaps.tolist())}
            acc = a[-1] * coef[-1]
            for k in range(len(orders) - 2, -1, -1):
                acc = acc * zg[int(gaps[k])] + a[k] * coef[k]
            y[s0:s1] += (acc * np.exp(1j * orders[0] * ph)).real
    return y


def render(src, path: Path, i0: int, i1: int, fs: int, ground_q: float | None) -> np.ndarray:
    """The source alone at the microphone for samples [i0, i1) of the scene (full-scale-free units)."""
    q = reduced_factor(fs)
    fs_r = fs // q
    n = i1 - i0
    t = (i0 + np.arange(n)) / fs
    y = np.zeros(n)
    if src.has_tonal:
        t_r = t[::q]
        yr = _tonal(src, path, t_r, fs_r)
        y += signal.resample_poly(yr, q, 1)[:n] if q > 1 else yr
    qb = max(1, fs // 12_000)  # broadband envelopes and gains at ~12 kHz, held
    tau_b, r_b, cos_b = path.geometry(t[::qb])
    bb = src.broadband(tau_b, src.directivity(cos_b) / r_b, qb, n)
    if bb is not None:
        y += bb
    for tau_e, amp, kernel in src.events():
        r_e, cos_e = path.range_at(tau_e)
        j = int(round((tau_e + r_e / C_AIR) * fs)) - i0  # arrival time of the event
        if 0 <= j < n:
            seg = kernel[: n - j] * amp * float(src.directivity(np.array([cos_e]))[0]) / r_e
            y[j: j + seg.size] += seg
    if ground_q:
        _, r1, _ = path.geometry(t[::CTRL_HOP])
        _, r2, _ = path.geometry(t[::CTRL_HOP], image=True)
        tc = t[::CTRL_HOP]
        delay = np.interp(t, tc, (r2 - r1) / C_AIR) * fs
        ratio = np.interp(t, tc, r1 / r2)
        idx = np.arange(n) - delay
        y = y + ground_q * ratio * np.interp(idx, np.arange(n), y, left=0.0)
    return y * taper(n, fs)


def taper(n: int, fs: int, fade_s: float = 0.4) -> np.ndarray:
    k = min(int(fade_s * fs), n // 2)
    w = np.ones(n)
    if k:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        w[:k], w[n - k:] = ramp, ramp[::-1]
    return w
