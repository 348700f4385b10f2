"""Background textures and intermittent events (all at the microphone; the scene sets their levels).

- road roar: 1/f-like noise, power ~ f^-tilt, a low-frequency boost below ``road_low_hz`` (strong content under
  500 Hz), a random smooth ripple in log-frequency (the colour of a real recording), and a slow level sway;
- distant traffic: the *sum of many pass-bys* on other streets, each an intensity envelope
  ``1 / (D^2 + v^2 (t - t0)^2)`` over one of three tyre-noise grains, darker (air and ground) with distance;
- idling engine: the pulse-train engine of ``vehicles`` at idle behind a silencer (orders at 20-70 Hz);
- wind: buffeting with power ~ 1 / (1 + (f / corner)^2), gated by a squared slow random process (gusts);
- rain: a Poisson stream of drop impacts, each a click plus a short decaying bubble chirp (1-5 kHz);
- events: footsteps (a walk of heel clicks at ~2 Hz), door slam (low thump + rattle), birds (a phrase of
  FM chirps at 2-7 kHz), babble (2-4 talkers: glottal pulses through vowel formants, syllabic AM).
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import signal

from simulators.street_scenes.ranges import Draws
from simulators.street_scenes.vehicles import engine, firing_fractions


def _shaped(rng: np.random.Generator, n: int, fs: int, mag_of_f) -> np.ndarray:
    nf = sfft.next_fast_len(n, real=True)
    f = np.fft.rfftfreq(nf, 1.0 / fs)
    mag = mag_of_f(np.maximum(f, 1e-3))
    mag[f < 12] = 0.0
    return sfft.irfft(mag * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)), nf)[:n]


def _slow(rng: np.random.Generator, n: int, fs: int, lo_hz: float, hi_hz: float) -> np.ndarray:
    """Unit-variance slow random process with content between lo_hz and hi_hz (computed at 50 Hz)."""
    m = n * 50 // fs + 2
    x = _shaped(rng, m, 50, lambda f: ((f >= lo_hz) & (f <= hi_hz)).astype(float))
    x /= max(float(np.std(x)), 1e-12)
    return np.interp(np.arange(n) / fs, np.arange(m) / 50.0, x)


def road_roar(d: Draws, rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    tilt, boost, corner = d("road_tilt"), d("road_low_boost_db"), d("road_low_hz")
    ripple, sway = d("road_ripple_db"), d("road_sway_db")
    k = rng.uniform(0.5, 3.0, 6)
    ph = rng.uniform(0, 2 * np.pi, 6)

    def mag(f: np.ndarray) -> np.ndarray:
        lf = np.log2(f / 1000.0)
        rip = sum(np.cos(ki * lf + pi) for ki, pi in zip(k, ph, strict=True)) / np.sqrt(3)
        low = 1 + (10 ** (boost / 20) - 1) / (1 + (f / corner) ** 4)
        return f ** (-tilt / 2) * low * 10 ** (ripple * rip / 20) / (1 + (f / 12000.0) ** 2)

    x = _shaped(rng, n, fs, mag)
    return x * 10 ** (sway * _slow(rng, n, fs, 0.02, 0.3) / 20)


def distant_traffic(d: Draws, rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    dur = n / fs
    count = max(1, int(round(d("distant_passbys_per_min") * dur / 60)))
    grains = [_shaped(rng, n, fs, lambda f, fp=fp: np.exp(-0.5 * (np.log(f / fp) / 0.6) ** 2) + 0.05 / (1 + f / 200))
              for fp in (250.0, 450.0, 800.0)]
    envs = [np.zeros(n) for _ in grains]
    t = np.arange(n) / fs
    for _ in range(count):
        dist = d("distant_dist_m")
        v = d("speed_kmh") / 3.6
        t0 = rng.uniform(-5, dur + 5)
        g = 0 if dist > 200 else (1 if dist > 90 else 2)  # darker grain for farther roads
        envs[g] += 1.0 / (dist**2 + (v * (t - t0)) ** 2)
    return sum(gr / max(float(np.std(gr)), 1e-12) * np.sqrt(e) for gr, e in zip(grains, envs, strict=True))


def idle_engine(d: Draws, rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    rpm = np.full(n, d("idle_rpm")) * (1 + 0.01 * _slow(rng, n, fs, 0.1, 1.0))
    fr, _ = firing_fractions(d, moto=False)
    return engine(d, rng, fs, rpm, np.full(n, 0.2), fr, straight=False)


def wind(d: Draws, rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    corner, gust = d("wind_corner_hz"), d("wind_gust_hz")
    x = _shaped(rng, n, fs, lambda f: 1.0 / (1 + (f / corner) ** 2))
    g = _slow(rng, n, fs, 0.01, gust)
    return x * (0.2 + np.maximum(g + 0.5, 0.0) ** 2)


def rain(d: Draws, rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    rate = d("rain_drops_per_s")
    k = rng.poisson(rate * n / fs)
    at = rng.integers(0, n, k)
    out = np.zeros(n)
    tk = np.arange(int(0.012 * fs)) / fs
    kinds = 4
    for j in range(kinds):
        sel = at[j::kinds]
        imp = np.zeros(n)
        np.add.at(imp, sel, np.exp(rng.normal(0, 0.7, sel.size)))
        f0 = rng.uniform(1000, 5000)
        tau = rng.uniform(0.002, 0.008)
        chirp = np.sin(2 * np.pi * f0 * tk * (1 + 3 * tk)) * np.exp(-tk / tau)
        chirp[:3] += np.array([1.0, -0.6, 0.2])  # the impact click
        out += signal.fftconvolve(imp, chirp)[:n]
    return out


def event(kind: str, d: Draws, fs: int) -> np.ndarray:
    """One intermittent event (seconds long), arbitrary scale; choices from ``d``, grain from ``d.noise``."""
    rng = d.noise
    if kind == "footsteps":
        steps, cadence = d("steps"), d("step_hz")
        n = int((steps / cadence + 0.5) * fs)
        x = np.zeros(n)
        tk = np.arange(int(0.03 * fs)) / fs
        for s in range(steps):
            i = int((s / cadence + rng.normal(0, 0.02) + 0.1) * fs)
            burst = rng.standard_normal(tk.size) * np.exp(-tk / 0.006)
            x[i:i + tk.size] += burst[: max(0, min(tk.size, n - i))]
        return signal.sosfilt(signal.butter(2, [200, 4000], btype="bandpass", fs=fs, output="sos"), x)
    if kind == "door_slam":
        n = int(0.8 * fs)
        t = np.arange(n) / fs
        thump = sum(np.sin(2 * np.pi * d("slam_hz") * t) * np.exp(-t / 0.06) for _ in range(3))
        rattle = rng.standard_normal(n) * np.exp(-t / 0.04) * 0.4
        return thump + signal.sosfilt(signal.butter(2, 1500, btype="highpass", fs=fs, output="sos"), rattle)
    if kind == "birds":
        chirps = d("chirps")
        n = int((chirps * 0.25 + 0.3) * fs)
        x = np.zeros(n)
        for c in range(chirps):
            f_c, m = d("chirp_hz"), int(d("chirp_s") * fs)
            tk = np.arange(m) / fs
            f = f_c * (1 + rng.uniform(-0.4, 0.4) * tk / tk[-1])
            i = int((0.05 + c * 0.25 + rng.uniform(0, 0.05)) * fs)
            seg = np.sin(2 * np.pi * np.cumsum(f) / fs) * np.hanning(m)
            x[i:i + m] += seg[: max(0, min(m, n - i))]
        return x
    # babble
    n = int(d("babble_s") * fs)
    t = np.arange(n) / fs
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410)]
    out = np.zeros(n)
    for _ in range(d("talkers")):
        f0 = d("talker_f0_hz") * (1 + 0.08 * _slow(rng, n, fs, 0.5, 3.0))
        ph = np.cumsum(f0) / fs
        exc = np.diff(np.floor(ph), prepend=0.0)
        seg = np.minimum((t / d("vowel_s")).astype(int), 10_000)
        choice = rng.integers(0, len(vowels), seg.max() + 1)[seg]
        voiced = np.zeros(n)
        for vi, formants in enumerate(vowels):
            y = exc.copy()
            for fmt in formants:
                b, a = signal.iirpeak(fmt, 6.0, fs=fs)
                y = signal.lfilter(b, a, y) * 3
            voiced += y * (choice == vi)
        out += voiced * np.clip(np.sin(2 * np.pi * d("syllable_hz") * t + rng.uniform(0, 6)) + 0.3, 0, None)
    return out
