"""Background textures (class ``none``): the urban traffic texture from a drawn 1/3-octave spectrum shaped in the
frequency domain and modulated by the signal cycle, wind on the windscreen, rain as filtered crackle, the
preamp's self-noise; and the microphone's windscreen."""

from __future__ import annotations

import numpy as np
from scipy import signal

from simulators.junction_scenes.meter import F1, F2, F3, F4

# EN 1793-3 normalised road-traffic spectrum, A-weighted 1/3-octave levels 100 Hz - 5 kHz (dB)
EN1793 = {100: -20, 125: -20, 160: -18, 200: -16, 250: -15, 315: -14, 400: -13, 500: -12, 630: -11, 800: -9,
          1000: -8, 1250: -9, 1600: -10, 2000: -11, 2500: -13, 3150: -15, 4000: -16, 5000: -18}


def a_db(f: np.ndarray) -> np.ndarray:
    f2 = np.maximum(f, 1.0) ** 2
    ra = F4 ** 2 * f2 ** 2 / ((f2 + F1 ** 2) * np.sqrt((f2 + F2 ** 2) * (f2 + F3 ** 2)) * (f2 + F4 ** 2))
    return 20 * np.log10(ra) + 2.0


def traffic(n: int, fs: int, tilt: float, low_db: float, low_hz: float, dev_db: float, cycle_db: float,
            green: list[tuple[float, float]], rng: np.random.Generator) -> np.ndarray:
    """Random-phase noise whose 1/3-octave spectrum is EN 1793-3 (extended 25 Hz - 16 kHz by its end slopes)
    + tilt about 1 kHz + a low boost + a random deviation per band, un-A-weighted; louder while our approach
    has red (the cross street flows) by ``cycle_db``."""
    bands = 1000 * 2 ** (np.arange(-16, 13) / 3)
    known_f = np.array(list(EN1793))
    known = np.array(list(EN1793.values()), float)
    lv = np.interp(np.log2(bands), np.log2(known_f), known)
    lv = np.where(bands < 100, -20 - 1.0 * np.log2(100 / bands) * 3, lv)
    lv = np.where(bands > 5000, -18 - 6.0 * np.log2(bands / 5000), lv)
    lv = lv + tilt * np.log2(bands / 1000) + low_db / (1 + (bands / low_hz) ** 4) + dev_db * rng.standard_normal(
        bands.size)
    lv = lv - a_db(bands)  # back to unweighted band levels
    f = np.fft.rfftfreq(n, 1 / fs)
    dens = lv - 10 * np.log10(bands * 0.2316)  # per-Hz
    mag = 10 ** (np.interp(np.log2(np.maximum(f, 10.0)), np.log2(bands), dens) / 20)
    mag[f < 20] = 0.0
    spec = mag * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))
    x = np.fft.irfft(spec, n)
    t = np.arange(n) / fs
    red = np.ones(n)
    for a, b in green:
        red[(t >= a) & (t < b)] = 0.0
    w = int(3 * fs)
    if n > w:  # 3 s moving average: the cross street's flow builds up and fades
        c = np.concatenate([[0.0], np.cumsum(red)])
        lo = np.clip(np.arange(n) - w // 2, 0, n)
        hi = np.clip(np.arange(n) + w // 2, 0, n)
        red = (c[hi] - c[lo]) / np.maximum(hi - lo, 1)
    return x * 10 ** ((cycle_db * (red - 1)) / 20)


def wind(n: int, fs: int, corner: float, gust_hz: float, depth: float, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency turbulence at the windscreen (flat below ``corner``, f^-2 above), gust-modulated by
    exp(depth * g) with g a slow Gaussian process of bandwidth ``gust_hz``."""
    sos = signal.butter(2, corner, fs=fs, output="sos")
    x = signal.sosfilt(sos, rng.standard_normal(n))
    m = max(n // 480, 8)
    g = signal.sosfilt(signal.butter(2, gust_hz, fs=fs / 480, output="sos"), rng.standard_normal(m))
    g /= np.std(g) + 1e-12
    env = np.exp(depth * np.interp(np.arange(n) / 480, np.arange(m), g))
    return x * env


def rain(n: int, fs: int, rate: float, hz: float, rng: np.random.Generator) -> np.ndarray:
    """Crackle: Poisson impulses with Pareto amplitudes through a band-pass around ``hz`` and a high shelf."""
    k = rng.poisson(rate * n / fs)
    x = np.zeros(n)
    np.add.at(x, rng.integers(0, n, k), rng.pareto(2.5, k) * rng.choice([-1, 1], k))
    sos = signal.butter(2, [hz / 2, min(hz * 2.5, 0.45 * fs)], "bandpass", fs=fs, output="sos")
    return signal.sosfilt(sos, x)


def self_noise(n: int, fs: int, rng: np.random.Generator) -> np.ndarray:
    """Preamp self-noise: white with a gentle 1/f rise below 200 Hz."""
    w = rng.standard_normal(n)
    return w + signal.sosfilt(signal.butter(1, 200, fs=fs, output="sos"), rng.standard_normal(n)) * 2.0


def windscreen(x: np.ndarray, fs: int, loss_db: float) -> np.ndarray:
    """Foam windscreen: a first-order high shelf losing ``loss_db`` above about 8 kHz."""
    if loss_db <= 0:
        return x
    lp = signal.sosfilt(signal.butter(1, 8000, fs=fs, output="sos"), x)
    return lp + 10 ** (-loss_db / 20) * (x - lp)
