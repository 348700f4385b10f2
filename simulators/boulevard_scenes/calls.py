"""Horns, sirens and trams as spectral models on a moving path (Doppler by the renderer, like the engines).

Horns: square-ish tones (odd harmonics 1/k, even ones scaled by ``1 - horn_square``) through a resonant horn (a
log-Gaussian bell gain around ``horn_bell_hz``); two-tone pairs, singles, truck air horns (2-4 sawtooth reeds in a
chord with an onset droop) and small motorcycle horns; 1-4 beeps. Sirens: this family's own frequency tables (Hz,
low/high per row, times ``siren_detune``), harmonics rolling off at ``siren_harm_db_oct`` with even ones 8 dB down.
Trams: inharmonic partials (a flange squeal, a traction whine, a struck bell) over a rolling-noise residual."""

from __future__ import annotations

import math

import numpy as np

from simulators.boulevard_scenes.render import CTRL_HZ, Emitter, Path, Tonal

SIRENS = {  # pattern: (rows of (low, high) Hz, period factor)
    "two_tone": ([(435, 580), (470, 620), (410, 550), (520, 690)], 1.0),
    "hilo": ([(610, 820), (680, 900), (560, 760), (740, 980)], 0.6),
    "wail": ([(480, 1320), (560, 1480), (620, 1600), (700, 1750)], 4.0),
    "yelp": ([(480, 1320), (560, 1480), (620, 1600), (700, 1750)], 0.25),
    "rumbler": ([(150, 420), (170, 460), (190, 500), (210, 540)], 0.3),
    "martinhorn": ([(392, 523), (440, 587), (466, 622), (415, 554)], 1.2),
}


def _gate(t: np.ndarray, starts: list[float], lengths: list[float], edge: float = 0.015) -> np.ndarray:
    g = np.zeros_like(t)
    for s, ln in zip(starts, lengths, strict=True):
        u = np.minimum(t - s, s + ln - t) / edge
        g = np.maximum(g, np.clip(u, 0, 1))
    return g


def _harmonics(f0: float, square: float, bell_hz: float, top_hz: float, saw: bool = False):
    k = np.arange(1, max(2, int(top_hz / f0)) + 1).astype(float)
    a = 1 / k if saw else np.where(k % 2 == 1, 1 / k, (1 - square) / k)
    a = a * 10 ** (12 * np.exp(-0.5 * (np.log2(k * f0 / bell_hz) / 0.5) ** 2) / 20)
    return k, a


def horn(part: str, d, path: Path, t_cpa: float) -> tuple[Emitter, dict]:
    rng = np.random.default_rng(d.rng_seed(part))
    kind = d(part, "horn_kind")
    n = d(part, "horn_beeps")
    t0 = t_cpa + d(part, "horn_offset_s")
    starts, lengths, t = [], [], t0
    for _ in range(n):
        ln = d(part, "horn_beep_s") * rng.uniform(0.7, 1.0)
        starts.append(t)
        lengths.append(ln)
        t += ln + rng.uniform(0.08, 0.4)
    keep = (path.t >= starts[0] - 0.5) & (path.t <= t + 0.5)  # render only around the beeps
    if keep.sum() > 20:
        path = Path(path.t[keep], path.x[keep], path.lateral, path.dz)
    gate = _gate(path.t, starts, lengths)
    bell, square = d(part, "horn_bell_hz"), d(part, "horn_square")
    groups, tones = [], []
    if kind in ("two_tone", "single", "moto"):
        f1 = d(part, "moto_horn_f_hz") if kind == "moto" else d(part, "horn_f_hz")
        tones = [f1, f1 * d(part, "horn_ratio")] if kind == "two_tone" else [f1]
        for f in tones:
            k, a = _harmonics(f, square, bell * (1.4 if kind == "moto" else 1.0), 9000.0)
            groups.append(Tonal(np.full(path.t.size, f), k, a[:, None] * gate[None, :]))
    else:
        base = d(part, "air_horn_f_hz")
        ratios = [1.0, 1.26, 1.5, 1.78][: d(part, "air_reeds")]
        droop = 1 - 0.04 * np.exp(-np.maximum(path.t - starts[0], 0) / 0.12)
        for r in ratios:
            tones.append(base * r)
            k, a = _harmonics(base * r, 0.0, 900.0, 7000.0, saw=True)
            groups.append(Tonal(base * r * droop, k, a[:, None] * gate[None, :]))
    em = Emitter(path=path, seed=d.rng_seed(part + "/noise"), tonal=groups, rate_div=2, fade_s=0.05)
    return em, {"horn": kind, "f_hz": [round(f, 2) for f in tones], "beeps": n,
                "beep_starts": [round(s, 3) for s in starts]}


def siren_track(pattern: str, lo: float, hi: float, period: float, t: np.ndarray) -> np.ndarray:
    ph = (t / period) % 1.0
    if pattern in ("two_tone", "hilo", "martinhorn"):
        return np.where(ph < 0.5, lo, hi)
    if pattern == "wail":
        up = np.clip(ph / 0.45, 0, 1)
        return np.where(ph < 0.45, lo * (hi / lo) ** (np.sin(0.5 * math.pi * up) ** 2),
                        hi - (hi - lo) * (1 - np.exp(-(ph - 0.45) * 5)))
    return lo + (hi - lo) * np.sqrt(ph)  # yelp, rumbler: quick rises that snap back


def siren(part: str, d, path: Path, t_cpa: float) -> tuple[Emitter, dict]:
    pattern = d(part, "siren_pattern")
    rows, factor = SIRENS[pattern]
    lo, hi = rows[d(part, "siren_row")]
    det = d(part, "siren_detune")
    lo, hi = lo * det, hi * det
    period = d(part, "siren_period_s") * factor
    f0 = siren_track(pattern, lo, hi, period, path.t - path.t[0])
    if pattern in ("two_tone", "hilo", "martinhorn"):
        f0 = np.convolve(np.pad(f0, 2, mode="edge"), np.ones(5) / 5, mode="valid")  # 25 ms glide between tones
    slope = d(part, "siren_harm_db_oct")
    k = np.arange(1, 10).astype(float)
    a = 10 ** (slope * np.log2(k) / 20) * np.where(k % 2 == 0, 10 ** (-8 / 20), 1.0)
    if pattern == "martinhorn":
        a = 1 / k  # a pneumatic two-tone horn: sawtooth-rich
    start = d(part, "siren_start")
    late = np.random.default_rng(d.rng_seed(part)).uniform(0.5, 4.0)  # it switches on while approaching
    t_on = path.t[0] if start == "before" else t_cpa - late
    gate = np.clip((path.t - t_on) / 0.05, 0, 1)
    em = Emitter(path=path, seed=d.rng_seed(part), tonal=[Tonal(f0, k, a[:, None] * gate[None, :])], rate_div=2)
    return em, {"pattern": pattern, "f_hz": [round(lo, 1), round(hi, 1)], "cycle_s": round(period, 3),
                "t_on": round(float(max(t_on, path.t[0])), 3), "mode": "passing"}


def tram(part: str, d, path: Path, speed: float) -> tuple[Emitter, dict]:
    rng = np.random.default_rng(d.rng_seed(part))
    t = path.t
    groups = []
    wheel = speed / (math.pi * 0.68)
    groups.append(Tonal(np.full(t.size, wheel), np.arange(1, 9.0), (0.6 / np.arange(1, 9.0))[:, None]
                        * np.ones((1, t.size))))
    whine = speed * rng.uniform(25.0, 60.0)
    groups.append(Tonal(np.full(t.size, whine), np.array([1.0, 2.0, 3.07]), np.array([[0.2], [0.08], [0.04]])
                        * np.ones((1, t.size))))
    squeal, sq_hz = d(part, "squeal"), d(part, "squeal_hz")
    if squeal:
        env = np.clip(np.sin(2 * math.pi * (t - t[0]) / max(t[-1] - t[0], 1.0) * rng.uniform(1, 3)), 0, 1)
        groups.append(Tonal(sq_hz * (1 + 0.004 * np.sin(2 * math.pi * 3.1 * t)), np.array([1.0]),
                            2.0 * env[None, :]))
    ring, bell_hz = d(part, "tram_bell"), d(part, "bell_hz")
    if ring:
        strikes = np.zeros(t.size)
        tc = t[0] + (t[-1] - t[0]) * rng.uniform(0.3, 0.6)
        for j in range(int(rng.integers(2, 5))):
            u = t - (tc + 0.35 * j)
            strikes += np.where(u >= 0, np.exp(-np.maximum(u, 0) / 0.4), 0.0)
        mult = np.array([1.0, 2.32, 4.25, 6.63])  # a struck bell's inharmonic partials
        groups.append(Tonal(np.full(t.size, bell_hz), mult, np.array([[1.0], [0.6], [0.35], [0.2]]) * strikes))

    def rolling(tau: np.ndarray, fe: np.ndarray) -> np.ndarray:
        return 0.05 * np.exp(-0.5 * (np.log2(fe / 700.0) / 1.2) ** 2)

    em = Emitter(path=path, seed=d.rng_seed(part + "/noise"), tonal=groups, noise=rolling, rate_div=2, fade_s=1.0)
    return em, {"squeal": squeal, "squeal_hz": round(sq_hz, 1) if squeal else None, "bell": ring,
                "bell_hz": round(bell_hz, 1) if ring else None}


def emission_grid(t0: float, t1: float) -> np.ndarray:
    return np.arange(math.floor(t0 * CTRL_HZ), math.ceil(t1 * CTRL_HZ) + 1) / CTRL_HZ
