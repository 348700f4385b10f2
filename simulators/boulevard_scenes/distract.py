"""Stationary sounds of the avenue (class ``other``): birds, a dog, voices, a shop's music, a street sweeper, a
bus kneeling; and the far civil-defence siren (class ``siren``). Synthesised directly at the microphone (they do
not move), each scaled later to its drawn LAFmax there."""

from __future__ import annotations

import math

import numpy as np
from scipy import signal


def _tone(f: np.ndarray, fs: int) -> np.ndarray:
    return np.sin(2 * math.pi * np.cumsum(f) / fs)


def _harm(f0: np.ndarray, fs: int, formants: list[tuple[float, float]], n_h: int = 20) -> np.ndarray:
    y = np.zeros(f0.size)
    ph = 2 * math.pi * np.cumsum(f0) / fs
    for k in range(1, n_h + 1):
        fk = k * f0
        g = sum(10 ** (gain / 20) * np.exp(-0.5 * (np.log2(fk / fc) / 0.35) ** 2) for fc, gain in formants)
        y += np.where(fk < 0.45 * fs, g / k**0.5, 0.0) * np.sin(k * ph)
    return y


def distractor(kind: str, length: float, rng, fs: int) -> tuple[np.ndarray, dict]:
    n = int(length * fs)
    t = np.arange(n) / fs
    info: dict = {}
    if kind == "birds":
        y = np.zeros(n)
        k = int(rng.integers(4, 16))
        for _ in range(k):
            s, ln = rng.uniform(0, max(length - 0.2, 0.01)), rng.uniform(0.03, 0.18)
            i0, m = int(s * fs), int(ln * fs)
            fc = rng.uniform(2000, 7500)
            glide = fc * (1 + rng.uniform(-0.3, 0.3) * np.linspace(-1, 1, m))
            y[i0:i0 + m] += _tone(glide, fs)[: n - i0] * np.hanning(m)[: n - i0]
        info["chirps"] = k
    elif kind == "dog":
        y = np.zeros(n)
        k = int(rng.integers(2, 7))
        for j in range(k):
            i0, m = int(j * length / k * fs), int(rng.uniform(0.12, 0.3) * fs)
            f0 = rng.uniform(350, 900) * np.linspace(1.0, 0.8, m)
            seg = _harm(f0, fs, [(rng.uniform(900, 1600), 10.0), (rng.uniform(2000, 3200), 6.0)], 14)
            seg *= np.exp(-np.linspace(0, 4, m)) * np.minimum(1, np.arange(m) / (0.01 * fs))
            y[i0:i0 + m] += seg[: n - i0]
        info["barks"] = k
    elif kind == "voices":
        f0 = rng.uniform(100, 260) * (1 + 0.08 * np.sin(2 * math.pi * 0.7 * t)) * (1 + 0.03 * rng.standard_normal())
        vowel = int(rng.integers(0, 3))
        forms = [[(700, 8), (1200, 6), (2600, 2)], [(400, 8), (2000, 6), (2800, 3)], [(300, 8), (900, 5), (2400, 2)]]
        y = _harm(f0, fs, forms[vowel], 30)
        y *= (0.5 + 0.5 * np.sin(2 * math.pi * rng.uniform(3, 6) * t)) ** 2
        info["f0_hz"] = round(float(f0.mean()), 1)
    elif kind == "music":
        bpm = rng.uniform(80, 140)
        beat = (t * bpm / 60) % 1.0
        root = rng.uniform(55, 110)
        chord = sum(_tone(np.full(n, root * r * 2), fs) for r in (1, 1.26, 1.5))
        since = beat * 60 / bpm  # seconds since the beat
        kick = np.sin(2 * math.pi * (50 * since + 2.5 * (1 - np.exp(-since * 40)))) * np.exp(-beat * 18)
        y = 0.4 * chord * (0.6 + 0.4 * np.exp(-beat * 4)) + kick + 0.5 * _tone(np.full(n, root), fs)
        b, a = signal.butter(2, 3000, fs=fs)
        y = signal.lfilter(b, a, y)
        info["bpm"] = round(bpm, 1)
    elif kind == "sweeper":
        brush = rng.standard_normal(n) * (1 + 0.5 * np.sin(2 * math.pi * rng.uniform(3, 8) * t))
        b, a = signal.butter(2, [800, 8000], btype="band", fs=fs)
        f0 = rng.uniform(25, 40)
        y = signal.lfilter(b, a, brush) + 0.8 * sum(_tone(np.full(n, f0 * k), fs) / k for k in range(1, 12))
    else:  # bus_hiss: the kneeling bus lets its air out
        b, a = signal.butter(2, [2000, 12000], btype="band", fs=fs)
        y = signal.lfilter(b, a, rng.standard_normal(n)) * np.exp(-t / max(length / 3, 0.2))
    fade = np.minimum(1, np.minimum(t, t[-1] - t) / 0.02)
    return y * fade, info


def civil_siren(n_total: int, t_on: float, fs: int, rng, dist: float) -> tuple[np.ndarray, dict]:
    """A motor siren kilometres away: slow rise and fall between ~300 and ~480 Hz, rotor chopping, air loss."""
    i0 = int(t_on * fs)
    n = n_total - i0
    t = np.arange(n) / fs
    lo, hi, per = rng.uniform(270, 340), rng.uniform(420, 500), rng.uniform(8, 14)
    f = lo + (hi - lo) * (0.5 - 0.5 * np.cos(2 * math.pi * t / per)) * np.minimum(1, t / 3)
    ph = 2 * math.pi * np.cumsum(f) / fs
    y = sum(np.sin(k * ph) / k**1.5 for k in range(1, 6))
    y *= 1 + 0.3 * np.sin(2 * math.pi * 0.2 * t)  # the rotating head sweeps past
    b, a = signal.butter(2, min(0.45 * fs, 6000.0 * 1000 / dist), fs=fs)
    out = np.zeros(n_total)
    out[i0:] = signal.lfilter(b, a, y) * np.minimum(1, t / 2)
    return out, {"f_hz": [round(lo, 1), round(hi, 1)], "cycle_s": round(per, 2)}
