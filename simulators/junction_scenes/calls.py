"""Horns and sirens (emitted signals, 1 m reference) and the tonal distractors of a junction: accessible
pedestrian signals, bicycle bells, music, construction thumps."""

from __future__ import annotations

import math

import numpy as np
from scipy import signal


def _env(n: int, fs: int, on: list[tuple[float, float]], attack: float = 0.01, release: float = 0.02) -> np.ndarray:
    e = np.zeros(n)
    t = np.arange(n) / fs
    for a, b in on:
        seg = (t >= a) & (t < b + release)
        tt = t[seg]
        e[seg] = np.maximum(e[seg], np.minimum(np.clip((tt - a) / attack, 0, 1), np.clip((b + release - tt) / release,
                                                                                         0, 1)))
    return e


def horn(n: int, fs: int, kind: str, f_lo: float, ratio: float, beeps: list[tuple[float, float]],
         formant: float, slope: float, even_db: float, rng: np.random.Generator, reeds: int = 1) -> np.ndarray:
    """A horn: each tone a rich harmonic series (amplitude k^-slope, even harmonics ``even_db`` re odd,
    random +-3 dB per harmonic) through a bell formant (Q 3), a 5-7 Hz wobble, beeps with 10/20 ms edges."""
    tones = {"two_tone": [f_lo, f_lo * ratio], "single": [f_lo], "scooter": [f_lo],
             "air": [f_lo, f_lo * 1.26, f_lo * 1.5][:reeds]}[kind]
    t = np.arange(n) / fs
    out = np.zeros(n)
    wob = 1 + 0.004 * np.sin(2 * np.pi * rng.uniform(5, 7) * t)
    for f0 in tones:
        ph = 2 * np.pi * np.cumsum(f0 * wob) / fs
        kmax = int(min(10000.0, 0.45 * fs) // f0)
        for k in range(1, kmax + 1):
            fk = k * f0
            g = k ** -slope * 10 ** (((even_db if k % 2 == 0 else 0.0) + rng.uniform(-3, 3)) / 20)
            g /= math.sqrt((1 - (fk / formant) ** 2) ** 2 + (fk / formant / 3.0) ** 2)
            out += g * np.sin(k * ph + rng.uniform(0, 2 * np.pi))
    return out * _env(n, fs, beeps)


SIREN_BASE_S = {"wail": 5.0, "yelp": 0.33, "hilo": 1.1, "two_tone": 1.4, "phaser": 0.09, "alternating": 6.0}


def siren_freq(t: np.ndarray, pattern: str, lo: float, span: float, ratio: float, period: float) -> np.ndarray:
    u = (t / period) % 1.0
    if pattern == "wail":
        return lo * span ** np.where(u < 0.45, np.sin(0.5 * np.pi * u / 0.45), np.exp(-(u - 0.45) / 0.2))
    if pattern in ("yelp", "phaser"):
        return lo * span ** np.sqrt(u)
    if pattern in ("hilo", "two_tone"):
        return np.where(u < 0.5, lo * ratio, lo)
    # alternating: wail for one period, yelp for the next
    wail = siren_freq(t, "wail", lo, span, ratio, period)
    yelp = siren_freq(t, "yelp", lo, span, ratio, SIREN_BASE_S["yelp"] * period / SIREN_BASE_S["alternating"])
    return np.where((t // period) % 2 == 0, wail, yelp)


def siren(n: int, fs: int, t_on: float, t_off: float, pattern: str, lo: float, span: float, ratio: float,
          period: float, wave: str, drive: float, speaker_hz: float) -> np.ndarray:
    t = np.arange(n) / fs
    f = siren_freq(t, pattern, lo, span, ratio, period)
    s = np.sin(2 * np.pi * np.cumsum(f) / fs)
    s = np.tanh(drive * s) if wave == "tanh" else np.clip(drive * s, -1, 1)
    sos = np.vstack([signal.butter(2, [speaker_hz / 1.7, min(speaker_hz * 1.7, 0.45 * fs)], "bandpass", fs=fs,
                                   output="sos"), signal.butter(2, 350, "highpass", fs=fs, output="sos")])
    y = 0.3 * s + signal.sosfilt(sos, s)
    return y * _env(n, fs, [(t_on, t_off)], 0.25, 0.4)


def civil(n: int, fs: int, top_hz: float, period: float, rng: np.random.Generator) -> np.ndarray:
    """A motor civil-defence siren: slow rise and fall between 0.55 and 1.0 x top, rotor chopping."""
    t = np.arange(n) / fs
    u = (t / period) % 1.0
    f = top_hz * (0.55 + 0.45 * np.where(u < 0.4, np.sin(0.5 * np.pi * u / 0.4), np.cos(0.5 * np.pi * (u - 0.4) / 0.6)))
    ph = 2 * np.pi * np.cumsum(f) / fs
    y = sum(k ** -1.2 * np.sin(k * ph) for k in range(1, 7))
    return y * (0.75 + 0.25 * np.sin(2 * np.pi * rng.uniform(2, 4) * t))


def aps(n: int, fs: int, kind: str, hz: float, rate: float, walk: list[tuple[float, float]],
        rng: np.random.Generator) -> np.ndarray:
    """Accessible pedestrian signal: a fast tick / beep while pedestrians walk (``walk`` intervals), a 1 Hz
    locator tick otherwise."""
    out = np.zeros(n)
    t_list = []
    t = rng.uniform(0, 1)
    while t < n / fs:
        t_list.append(t)
        walking = any(a <= t < b for a, b in walk)
        t += 1.0 / rate if walking else 1.0
    burst_len = int((0.006 if kind == "tick" else 0.06) * fs)
    k = np.arange(burst_len) / fs
    if kind == "tick":
        burst = np.exp(-k / 0.0012) * np.sin(2 * np.pi * hz * k)
    else:
        burst = np.sin(2 * np.pi * hz * k) * np.minimum(1, np.minimum(k / 0.004, (k[-1] - k) / 0.004 + 1e-3))
        burst += 0.3 * np.sin(2 * np.pi * 3 * hz * k) * np.minimum(1, k / 0.004)
    for tt in t_list:
        i = int(tt * fs)
        m = min(burst_len, n - i)
        out[i:i + m] += burst[:m]
    return out


def bell(n: int, fs: int, f0: float, rings: int, t0: float, rng: np.random.Generator) -> np.ndarray:
    """A bicycle bell: inharmonic partials (1, 1.59, 2.14, 2.61, 3.9) with their own decays."""
    t = np.arange(n) / fs
    out = np.zeros(n)
    for r in range(rings):
        s = t0 + r * rng.uniform(0.12, 0.3)
        tt = t - s
        on = tt >= 0
        for ratio, dec in zip((1.0, 1.59, 2.14, 2.61, 3.9), (0.5, 0.3, 0.2, 0.15, 0.08), strict=True):
            fk = f0 * ratio
            if fk < 0.45 * fs:
                out[on] += np.exp(-tt[on] / dec) * np.sin(2 * np.pi * fk * tt[on]) / ratio
    return out


def music(n: int, fs: int, bpm: float, root: float, rng: np.random.Generator) -> np.ndarray:
    """Shop music / a busker: a kick on the beat and a chord (root, third, fifth) changing every bar."""
    beat = 60.0 / bpm
    loop = min(n, int(round(16 * beat * fs)))  # four bars, then repeated
    if loop < n:
        return np.tile(music(loop, fs, bpm, root, rng), n // loop + 1)[:n]
    t = np.arange(n) / fs
    kick_t = t % beat
    out = np.exp(-kick_t / 0.08) * np.sin(2 * np.pi * (50 + 60 * np.exp(-kick_t / 0.03)) * kick_t)
    bar = (t // (4 * beat)).astype(int)
    prog = np.array([1.0, 4 / 3, 1.5, 1.125])[bar % 4]
    for ratio, g in ((1.0, 0.6), (1.26, 0.4), (1.5, 0.4), (2.0, 0.25)):
        ph = 2 * np.pi * root * ratio * prog * t
        out += g * (np.sin(ph) + 0.3 * np.sin(2 * ph)) * (0.6 + 0.4 * np.exp(-(t % beat) / 0.3))
    return out


def thumps(n: int, fs: int, rate: float, hz: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    k = np.arange(int(0.5 * fs)) / fs
    shape = np.exp(-k / 0.06) * np.sin(2 * np.pi * hz * k) + 0.3 * np.exp(-k / 0.01) * rng.standard_normal(k.size)
    t = rng.exponential(1 / rate)
    while t < n / fs:
        i = int(t * fs)
        m = min(k.size, n - i)
        out[i:i + m] += shape[:m] * rng.uniform(0.5, 1.0)
        t += rng.exponential(1 / rate)
    return out
