"""Sirens and horns in the emission domain (pressure referred to 1 m, arbitrary scale).

Sirens: an instantaneous-frequency track per pattern, integrated to a phase, then a waveform per maker.

- ``two_tone`` / ``hilo``: two tones alternating (abrupt switch), ratio and cycle from their ranges;
- ``wail``: slow rise and fall (raised-cosine sweep between ``f_lo`` and ``f_lo * sweep_ratio``);
- ``yelp``: fast sawtooth-like sweeps (quick rise, slower fall) at ``yelp_hz``;
- electronic: ``tanh(drive * sin)`` (soft-clipped, odd harmonics) through a horn-loudspeaker band-pass;
- mechanical (wail only): a rotor chopping air: raised-cosine port pulses (all harmonics) whose rate follows
  the rotor's exponential spin-up and coast-down, with rotation AM and turbulent hiss.

Horns: an electric disc horn is a buzzing diaphragm: a narrow pulse train at the tone frequency exciting the
bell resonance (2-3.5 kHz); two-tone horns sum two such buzzers. Air horns are sawtooth-like reed tones through
a trumpet formant, with a pitch droop at the onset, 1-3 tones in a chord.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from simulators.street_scenes.ranges import Draws


def _phase(f: np.ndarray, fs: int) -> np.ndarray:
    return 2 * np.pi * np.cumsum(f) / fs


def siren_track(d: Draws, n: int, fs: int, pattern: str) -> tuple[np.ndarray, list[float]]:
    t = np.arange(n) / fs
    f_lo = d("siren_f_lo")
    if pattern in ("two_tone", "hilo"):
        ratio = d("two_tone_ratio") if pattern == "two_tone" else d("hilo_ratio")
        period = d("two_tone_period_s") if pattern == "two_tone" else d("hilo_period_s")
        f = np.where(np.mod(t, period) < period / 2, f_lo, f_lo * ratio)
        return f, [f_lo, f_lo * ratio]
    f_hi = f_lo * d("siren_sweep_ratio")
    if pattern == "wail":
        period = d("wail_period_s")
        f = f_lo + (f_hi - f_lo) * 0.5 * (1 - np.cos(2 * np.pi * t / period))
    else:
        u = np.mod(t * d("yelp_hz"), 1.0)
        f = f_lo + (f_hi - f_lo) * np.where(u < 0.3, u / 0.3, 1 - (u - 0.3) / 0.7)
    return f, [f_lo, f_hi]


def siren(d: Draws, rng: np.random.Generator, fs: int, n: int) -> tuple[np.ndarray, dict[str, object]]:
    pattern, maker = d("siren_pattern"), d("siren_maker")
    drive = d("siren_drive")
    if maker == "mechanical":
        pattern = "wail"
    f, span = siren_track(d, n, fs, pattern)
    t = np.arange(n) / fs
    if maker == "mechanical":
        spin = np.minimum(1 - np.exp(-t / 2.5), np.exp(-np.maximum(t - 0.8 * t[-1], 0) / 3.0))
        f = span[0] * 0.3 + (span[1] - span[0] * 0.3) * spin
        ph = np.mod(_phase(f, fs) / (2 * np.pi), 1.0)
        x = np.where(ph < 0.4, 0.5 * (1 - np.cos(2 * np.pi * ph / 0.4)), 0.0)
        x = x - x.mean()
        x *= 1 + 0.3 * np.sin(2 * np.pi * 0.2 * t)  # rotation of the horn bell
        x += 0.05 * rng.standard_normal(n) * np.sqrt(spin)
        span = [round(float(f.min()), 1), round(float(f.max()), 1)]
    else:
        x = np.tanh(drive * np.sin(_phase(f, fs)))
        x = signal.sosfilt(signal.butter(2, [300, 5000], btype="bandpass", fs=fs, output="sos"), x)
    ramp = np.minimum(1.0, t / 0.3) * np.minimum(1.0, (t[-1] - t) / 0.3)
    return x * ramp, {"pattern": pattern, "maker": maker, "f_hz": [round(v, 1) for v in span]}


def _buzzer(rng: np.random.Generator, f: np.ndarray, fs: int) -> np.ndarray:
    ph = np.mod(_phase(f, fs) / (2 * np.pi), 1.0)
    x = np.where(ph < 0.12, np.sin(np.pi * ph / 0.12), 0.0)
    x = x - x.mean()
    bell = rng.uniform(2000, 3500)
    b, a = signal.iirpeak(bell, 4.0, fs=fs)
    return x + 2.0 * signal.lfilter(b, a, x)


def horn(d: Draws, rng: np.random.Generator, fs: int, kind: str) -> tuple[np.ndarray, dict[str, object]]:
    """A horn event: ``horn_beeps`` beeps of ``horn_beep_s`` (gaps of a quarter beep + 0.1 s) of the tone(s)."""
    beeps, beep_s = d("horn_beeps"), d("horn_beep_s")
    slot_s = beep_s * 1.25 + 0.1
    n = int((beeps * slot_s + 0.1) * fs)
    t = np.arange(n) / fs
    if kind == "air":
        f1 = d("air_horn_f_hz")
        n_tones = d("air_horn_tones")
        ratios = [1.0, 1.25, 1.5][:n_tones]
        tones = [f1 * r for r in ratios]
        droop = 1 - 0.04 * np.exp(-t / 0.08)
        x = np.zeros(n)
        for f in tones:
            ph = np.mod(_phase(f * droop, fs) / (2 * np.pi), 1.0)
            x += 2 * ph - 1
        b, a = signal.iirpeak(rng.uniform(500, 1500), 1.5, fs=fs)
        x = x + 3 * signal.lfilter(b, a, x)
    else:
        f1 = d("horn_f_hz")
        ratio = 1.2 if d("horn_six_fifths") else d("horn_ratio")
        tones = [f1, f1 * ratio] if kind == "two_tone" else [f1]
        x = sum(_buzzer(rng, np.full(n, f), fs) for f in tones)
    gate = np.zeros(n)
    for k in range(beeps):
        a0 = int((0.05 + k * slot_s) * fs)
        gate[a0:a0 + int(beep_s * fs)] = 1.0
    gate = signal.fftconvolve(gate, np.hanning(int(0.03 * fs)) / (0.015 * fs), mode="same")
    return x * np.clip(gate, 0, 1), {"f_hz": [round(float(f), 1) for f in tones], "beeps": beeps}
