"""Background textures of the kerbside family (class ``none``): many distant vehicles, wind on the microphone,
rain and the microphone's self-noise. Each is returned unscaled; the scene scales it to its drawn LAeq."""

from __future__ import annotations

import numpy as np
from scipy import signal

LOW = 8  # distant traffic and wind are synthesised at fs / LOW and resampled up


def distant(dr, fs: int, n: int, duration_s: float) -> tuple[np.ndarray, dict]:
    """A sum of far vehicles: each a low-passed engine + tyre source with its own pass envelope (1/r^2 on a
    far street), its own low engine hum, in four spectral groups."""
    rng = dr.rng("distant")
    count = max(int(round(dr("distant", "distant_vehicles") * duration_s / 60.0)), 1)
    lp = dr("distant", "distant_lp_hz")
    hum_db = dr("distant", "distant_hum_db")
    fl = fs // LOW
    nl = n // LOW + 1
    t = np.arange(nl) / fl
    out = np.zeros(nl)
    groups = 4
    envs = np.zeros((groups, nl))
    hum = np.zeros(nl)
    for i in range(count):
        tc = rng.uniform(-10, duration_s + 10)
        dist, v = rng.uniform(30, 300), rng.uniform(6, 20)
        e = 1.0 / (1.0 + ((t - tc) * v / dist) ** 2) / dist**2
        envs[i % groups] += e
        f_hum = rng.uniform(30, 120)
        hum += np.sqrt(e) * np.sin(2 * np.pi * f_hum * (1 + 0.02 * np.sin(0.3 * t)) * t + rng.uniform(0, 6.3))
    for g in range(groups):
        corner = min(lp * (0.6 + 0.3 * g), 0.45 * fl)
        sos = signal.butter(2, corner, fs=fl, output="sos")
        out += signal.sosfilt(sos, rng.standard_normal(nl)) * np.sqrt(envs[g])
    if hum.any():
        out += hum * 10 ** (hum_db / 20) * np.std(out) / max(np.std(hum), 1e-12) * 0.5
    up = signal.resample_poly(out, LOW, 1)[:n]
    return up.astype(np.float32), {"vehicles": count, "lp_hz": round(lp, 1), "hum_db": round(hum_db, 2)}


def wind(dr, fs: int, n: int, duration_s: float) -> tuple[np.ndarray, dict]:
    """Turbulence at the microphone: f^-2 above ``wind_corner_hz``, gusty, with short strong low-frequency
    bursts (gusts the windscreen cannot stop)."""
    rng = dr.rng("wind")
    corner = dr("wind", "wind_corner_hz")
    fl = fs // LOW
    nl = n // LOW + 1
    x = signal.sosfilt(signal.butter(2, corner, fs=fl, output="sos"), rng.standard_normal(nl))
    gust = signal.sosfilt(signal.butter(1, 0.3, fs=fl, output="sos"), rng.standard_normal(nl))
    gust = np.exp(1.2 * gust / (np.std(gust) + 1e-12))
    bursts = rng.poisson(dr("wind", "wind_bursts_per_min") * duration_s / 60.0)
    t = np.arange(nl) / fl
    for tb in rng.uniform(0, duration_s, bursts):
        w = rng.uniform(0.2, 1.5)
        gust += rng.uniform(3, 10) * np.exp(-0.5 * ((t - tb) / (w / 3)) ** 2)
    up = signal.resample_poly(x * gust, LOW, 1)[:n]
    return up.astype(np.float32), {"corner_hz": round(corner, 1), "bursts": int(bursts)}


def rain(dr, fs: int, n: int) -> tuple[np.ndarray, dict]:
    """Drops: Poisson impacts (clicks) exciting decaying bubble resonances in four size classes."""
    rng = dr.rng("rain")
    rate = dr("rain", "rain_drops_per_s")
    k = rng.poisson(rate * n / fs)
    pos = rng.integers(0, n, k)
    out = signal.sosfilt(signal.butter(2, 3000, "highpass", fs=fs, output="sos"),
                         np.bincount(pos, rng.exponential(1.0, k), n))
    for f, share in ((1600, 0.4), (2800, 0.3), (4500, 0.2), (7500, 0.1)):
        sel = rng.random(k) < share * 0.5
        r = np.exp(-1 / (0.004 * fs))
        train = np.bincount(pos[sel], rng.exponential(1.0, int(sel.sum())), n)
        out += 3 * signal.lfilter([1], [1, -2 * r * np.cos(2 * np.pi * f / fs), r * r], train) * (1 - r)
    return out.astype(np.float32), {"drops_per_s": round(rate, 1)}


def self_noise(dr, fs: int, n: int) -> np.ndarray:
    """MEMS self-noise: white with a 1/f rise below ~200 Hz."""
    rng = dr.rng("self_noise")
    w = rng.standard_normal(n)
    pink = signal.lfilter([1.0], [1.0, -0.995], w) * 0.03
    return (w + pink).astype(np.float32)
