"""Background textures, synthesised in the frequency domain from band spectra (random phase) and modulated in
time, plus rain as individual drop resonances. Each returns unit-free audio and its A-weighted mean square."""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import signal

from .meter import _fft_len, a_power, a_response

# EN 1793-3 normalised road-traffic noise spectrum, A-weighted 1/3-octave levels (dB, 100 Hz - 5 kHz), extended
# by this family below 100 Hz and above 5 kHz
TRAFFIC_A_DB = {
    50: -26.0, 63: -24.0, 80: -22.0, 100: -20.0, 125: -20.0, 160: -18.0, 200: -16.0, 250: -15.0, 315: -14.0,
    400: -13.0, 500: -12.0, 630: -11.0, 800: -9.0, 1000: -8.0, 1250: -9.0, 1600: -10.0, 2000: -11.0, 2500: -13.0,
    3150: -15.0, 4000: -16.0, 5000: -18.0, 6300: -20.0, 8000: -22.0, 10000: -25.0, 12500: -29.0, 16000: -34.0,
}


def traffic_bands(rng: np.random.Generator, tilt_db_oct: float, dev_db: float, low_boost_db: float,
                  extra_tilt_above_hz: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Unweighted band levels (dB) of a traffic spectrum with a tilt about 1 kHz, random per-band deviation and
    a boost below 500 Hz (full at 63 Hz and below)."""
    fc = np.array(sorted(TRAFFIC_A_DB), dtype=float)
    la = np.array([TRAFFIC_A_DB[int(f)] for f in fc])
    lvl = la - 20 * np.log10(np.abs(a_response(fc)))
    lvl += tilt_db_oct * np.log2(fc / 1000.0) + rng.normal(0.0, 1.0, fc.size) * dev_db
    lvl += low_boost_db * np.clip(np.log2(500.0 / fc) / np.log2(500.0 / 63.0), 0, 1)
    if extra_tilt_above_hz:
        lvl -= 6.0 * np.log2(np.maximum(fc / extra_tilt_above_hz, 1.0))
    return fc, lvl


def _spectrum(n: int, fs: int, fc: np.ndarray, lvl: np.ndarray, rng: np.random.Generator, hp_hz: float = 35.0
              ) -> tuple[np.ndarray, np.ndarray]:
    f = np.arange(n // 2 + 1) * (fs / n)
    grid = np.geomspace(1.0, fs / 2, 2048)
    dens = np.interp(np.log(grid), np.log(fc), lvl) - 10 * np.log10(0.2316 * grid)  # dB per Hz
    hp = (grid / hp_hz) ** 4 / (1 + (grid / hp_hz) ** 4)
    mag = np.interp(f, grid, 10 ** (dens / 20) * np.sqrt(hp))  # the shape on a log grid, then per bin
    mag[0] = 0.0
    spec = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) * mag
    return f, spec


def _a_ms(spec: np.ndarray, f: np.ndarray, n: int) -> float:
    """A-weighted mean square of irfft(spec, n), by Parseval."""
    p = (spec.real ** 2 + spec.imag ** 2) * a_power(f)
    return float((2 * np.sum(p) - p[0] - (p[-1] if n % 2 == 0 else 0)) / n ** 2)


def slow_envelope(rng: np.random.Generator, n: int, fs: int, sigma_db: float, tau_s: float) -> np.ndarray:
    """exp of a low-passed Gaussian process (std sigma_db in dB), normalised to unit mean square."""
    rate = 50
    m = int(n / fs * rate) + 2
    a = np.exp(-1.0 / (tau_s * rate))
    g = signal.lfilter([1 - a], [1, -a], rng.standard_normal(m + int(5 * tau_s * rate)))[-m:]
    g = 10 ** (g / max(float(np.std(g)), 1e-9) * sigma_db / 20)
    env = np.interp(np.arange(n) * (rate / fs), np.arange(m), g)
    return env / np.sqrt(np.mean(env * env))


def road_roar(n: int, fs: int, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, float]:
    """Near road traffic: the traffic spectrum split at 500 Hz, each part with its own slow modulation."""
    fc, lvl = traffic_bands(rng, p["road_tilt_db_oct"], p["road_band_dev_db"], p["road_low_boost_db"])
    f, spec = _spectrum(n, fs, fc, lvl, rng)
    lo = np.clip((700.0 - f) / 350.0, 0, 1) ** 0.5
    hi = np.sqrt(1 - lo ** 2)
    x = np.zeros(n)
    for mask in (lo, hi):
        x += sfft.irfft(spec * mask, n) * slow_envelope(rng, n, fs, p["road_mod_db"], p["road_mod_s"])
    return x, _a_ms(spec, f, n)


def distant_traffic(n: int, fs: int, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, float]:
    """Far traffic as grains: overlapping swells (one per far pass-by) over a floor, low-frequency heavy."""
    fc, lvl = traffic_bands(rng, -1.0, 2.0, 8.0, extra_tilt_above_hz=400.0)
    f, spec = _spectrum(n, fs, fc, lvl, rng)
    dur = n / fs
    k = max(1, int(round(p["distant_grains_per_min"] * dur / 60)))
    t = np.arange(0, dur, 0.02)
    power = np.full(t.size, 0.25)
    for tc, w, a in zip(rng.uniform(-3, dur + 3, k), rng.uniform(2.0, 8.0, k), 10 ** (rng.uniform(0, 12, k) / 10), strict=False):
        power += a * np.exp(-(((t - tc) / w) ** 2))
    env = np.sqrt(np.interp(np.arange(n) / fs, t, power))
    env /= np.sqrt(np.mean(env ** 2))
    return sfft.irfft(spec, n) * env, _a_ms(spec, f, n)


def wind(n: int, fs: int, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, float]:
    """Wind on the microphone: low-passed turbulence (corner wind_corner_hz), gusty."""
    f = sfft.rfftfreq(n, 1.0 / fs)
    ff = np.maximum(f, 1.0)
    mag = 1.0 / (1 + (ff / p["wind_corner_hz"]) ** 2) * (ff / 8.0) ** 2 / (1 + (ff / 8.0) ** 2)
    mag[0] = 0.0
    spec = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) * mag
    env = slow_envelope(rng, n, fs, 7.0, rng.uniform(0.8, 3.0))
    return sfft.irfft(spec, n) * env, _a_ms(spec, f, n)


def rain(n: int, fs: int, rng: np.random.Generator, p: dict) -> tuple[np.ndarray, float]:
    """Rain: each drop an impact click plus a decaying bubble resonance (Minnaert, 1.2-9 kHz), six drop sizes."""
    dur = n / fs
    count = rng.poisson(p["rain_drops_per_s"] * dur)
    pos = rng.integers(0, n, count)
    amp = 10 ** (rng.normal(0, 8, count) / 20) * rng.choice([-1.0, 1.0], count)
    kind = rng.integers(0, 4, count)
    x = np.zeros(n)
    clicks = np.bincount(pos, amp, minlength=n)
    for j, fr in enumerate(np.geomspace(1200.0, min(9000.0, 0.4 * fs), 4)):
        imp = np.bincount(pos[kind == j], amp[kind == j], minlength=n)
        rr = np.exp(-1.0 / (fs * rng.uniform(0.001, 0.004)))
        x += signal.lfilter([1.0 - rr], [1.0, -2 * rr * np.cos(2 * np.pi * fr / fs), rr * rr], imp)
    x += 0.3 * signal.sosfilt(signal.butter(2, [800.0, min(6000.0, 0.4 * fs)], "bandpass", fs=fs, output="sos"),
                              clicks)  # the impact: band-limited patter
    x *= slow_envelope(rng, n, fs, 2.5, 4.0)
    m = _fft_len(n)
    spec = sfft.rfft(x, m)
    return x, _a_ms(spec, np.arange(m // 2 + 1) * (fs / m), m) * m / n
