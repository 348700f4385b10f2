"""Sirens, horns and stationary street distractors of the kerbside family (frequency tables are this family's
own). Every function returns the emitted signal (arbitrary scale) and kind-specific labels."""

from __future__ import annotations

import numpy as np
from scipy import signal

from simulators.kerbside_scenes.engines import engine, math_tone

# (low, high) Hz per row; the pattern's period factor multiplies ``siren_period_s``
SIREN_ROWS = {
    "two_tone": ((440, 587), (466, 622), (392, 523), (550, 734)),
    "hilo": ((600, 800), (650, 900), (700, 950), (760, 1000)),
    "wail": ((500, 1300), (650, 1500), (700, 1700), (580, 1450)),
}
PERIOD_X = {"two_tone": 1.6, "hilo": 1.0, "wail": 4.5, "yelp": 0.25, "rumbler": 0.25, "wail_yelp": 4.5}
HORN_TONES = {"two_tone", "clipped"}


def _sos(kind: str, f, fs: int, order: int = 2):
    return signal.butter(order, f, kind, fs=fs, output="sos")


def siren_track(pattern: str, lo: float, hi: float, period: float, t: np.ndarray) -> np.ndarray:
    """Instantaneous frequency (Hz) of a siren pattern."""
    ph = np.mod(t / period, 1.0)
    if pattern in ("two_tone", "hilo"):
        return np.where(ph < 0.5, hi, lo)
    if pattern == "wail":  # log-frequency rise over 60 % of the cycle, fall over the rest
        shape = np.where(ph < 0.6, ph / 0.6, 1 - (ph - 0.6) / 0.4)
        return lo * (hi / lo) ** shape
    if pattern in ("yelp", "rumbler"):  # fast upward sweep, snap back
        return lo * (hi / lo) ** np.sqrt(ph)
    # wail_yelp: alternating 4 s of wail and 4 s of yelp
    use_wail = np.mod(t, 8.0) < 4.0
    return np.where(use_wail, siren_track("wail", lo, hi, period, t),
                    siren_track("yelp", lo, hi, period / 18.0, t))


def siren(dr, part: str, fs: int, n: int) -> tuple[np.ndarray, dict]:
    pattern = dr(part, "siren_pattern")
    rows = SIREN_ROWS["wail" if pattern not in SIREN_ROWS else pattern]
    lo, hi = rows[dr(part, "siren_row")]
    k = dr(part, "siren_detune")
    period = dr(part, "siren_period_s") * PERIOD_X[pattern]
    t = np.arange(n) / fs + dr.rng(part + "/siren").uniform(0, period)
    f = siren_track(pattern, lo * k, hi * k, period, t)
    drive = dr(part, "siren_drive")
    x = np.tanh(drive * math_tone(f, fs)) / np.tanh(drive)
    x = signal.sosfilt(_sos("bandpass", [350, 5000], fs), x)
    if pattern == "rumbler":  # a low-frequency woofer siren following the main one two octaves down
        low = np.tanh(2 * math_tone(f / 4, fs))
        x = x + 1.5 * signal.sosfilt(_sos("lowpass", 700, fs), low)
    return x.astype(np.float32), {"pattern": pattern, "f_hz": [round(lo * k, 1), round(hi * k, 1)],
                                  "cycle_s": round(period, 3)}


def civil_siren(fs: int, n: int, t_on: float, rng: np.random.Generator) -> np.ndarray:
    """A motor siren: slow rise and fall between 330 and 470 Hz, rotor chopping, on from ``t_on``."""
    t = np.arange(n) / fs
    period = rng.uniform(8, 12)
    f = 400 + 70 * np.sin(2 * np.pi * t / period)
    x = np.sign(math_tone(f, fs)) * (0.8 + 0.2 * math_tone(f / 5, fs))
    env = np.clip((t - t_on) / 3.0, 0.0, 1.0)
    return (signal.sosfilt(_sos("lowpass", 2500, fs), x) * env).astype(np.float32)


def horn(dr, part: str, fs: int, n: int, t_on: float) -> tuple[np.ndarray, dict]:
    kind = dr(part, "horn_kind")
    rng = dr.rng(part + "/horn")
    t = np.arange(n) / fs
    beeps = dr(part, "horn_beeps")
    env = np.zeros(n)
    start = t_on
    for i in range(beeps):
        length = dr(part, "horn_beep_s") if i == 0 else float(np.clip(dr(part, "horn_beep_s") * rng.uniform(0.5, 1.5),
                                                                       0.1, 1.5))
        s = t - start
        env = np.maximum(env, np.clip(s / 0.01, 0, 1) * np.clip((length - s) / 0.025, 0, 1))
        start += length + rng.uniform(0.08, 0.4)
    vib = 1 + 0.003 * np.sin(2 * np.pi * rng.uniform(4, 8) * t)
    info: dict = {"horn": kind, "beeps": beeps}
    if kind in ("two_tone", "single", "clipped"):
        f1 = dr(part, "horn_f_hz")
        tones = [f1, f1 * dr(part, "horn_ratio")] if kind in HORN_TONES else [f1]
        drive = dr(part, "horn_drive") if kind == "clipped" else 3.0
        x = sum((np.clip(drive * math_tone(f * vib, fs, rng.uniform(0, 6.3)), -1, 1) if kind == "clipped"
                 else np.tanh(drive * math_tone(f * vib, fs, rng.uniform(0, 6.3)) + 0.4)) for f in tones)
        x = x + 0.8 * signal.sosfilt(_sos("bandpass", [1800, 3200], fs), x)  # the disc's bell resonance
    elif kind == "air":
        f1 = dr(part, "air_horn_f_hz")
        tones = [f1, f1 * 1.26, f1 * 1.5][: 2 + int(rng.random() < 0.5)]
        x = sum(2 * np.mod(np.cumsum(f * vib) / fs + rng.random(), 1.0) - 1 for f in tones)
        x = signal.sosfilt(_sos("lowpass", 6000, fs), x) + 0.5 * signal.sosfilt(_sos("bandpass", [500, 1500], fs), x)
    else:  # motorcycle horn: one small buzzy disc
        f1 = dr(part, "moto_horn_f_hz")
        tones = [f1]
        x = signal.sosfilt(_sos("bandpass", [700, 5000], fs), np.tanh(1.5 * math_tone(f1 * vib, fs)))
    info["f_hz"] = [round(f, 1) for f in tones]
    return (x * env).astype(np.float32), info


def event(dr, part: str, kind: str, fs: int, n: int) -> tuple[np.ndarray, dict]:
    """A stationary distractor starting 0.5 s into its window."""
    rng = dr.rng(part + "/event")
    t = np.arange(n) / fs
    length = dr(part, "event_s")
    on = ((t >= 0.5) & (t < 0.5 + length)).astype(np.float64)
    info: dict = {"length_s": round(length, 3)}
    if kind == "jackhammer":
        rate = rng.uniform(12, 25)
        train = (np.diff(np.floor(t * rate), prepend=-1) > 0) * on * rng.uniform(0.6, 1.0, n)
        x = np.zeros(n)
        for f in rng.uniform(400, 3000, 3):
            r = np.exp(-1 / (0.012 * fs))
            x += signal.lfilter([1], [1, -2 * r * np.cos(2 * np.pi * f / fs), r * r], train)
        x += 0.3 * signal.lfilter([1], [1, -0.995], train) * rng.standard_normal(n)
        info["impacts_per_s"] = round(rate, 2)
    elif kind == "leaf_blower":
        rpm = np.full(int(n / fs * 1000) + 1, dr(part, "stroke2_rpm"))
        eng, _ = engine(dr, part, fs, n, rpm, np.ones_like(rpm), [0.0], 2, straight=False)
        fan = signal.sosfilt(_sos("highpass", 500, fs), rng.standard_normal(n))
        x = (eng / (np.std(eng) + 1e-12) + 0.7 * fan / np.std(fan)) * on * (1 + 0.4 * np.sin(2 * np.pi * 0.3 * t))
        info["rpm"] = dr(part, "stroke2_rpm")
    elif kind in ("dog_bark", "shout"):
        bark = kind == "dog_bark"
        x = np.zeros(n)
        t0 = 0.5
        for _ in range(int(rng.integers(1, 6 if bark else 4))):
            dur = rng.uniform(0.12, 0.3) if bark else rng.uniform(0.4, 1.2)
            f0 = rng.uniform(400, 900) if bark else rng.uniform(180, 380)
            s = t - t0
            env = np.clip(s / 0.015, 0, 1) * np.clip((dur - s) / 0.05, 0, 1)
            glottal = np.maximum(math_tone(f0 * (1 - 0.2 * np.clip(s / dur, 0, 1)), fs), 0) ** 4
            voiced = glottal + (0.3 if bark else 0.05) * rng.standard_normal(n)
            y = sum(signal.sosfilt(_sos("bandpass", [fc / 1.25, fc * 1.25], fs), voiced)
                    for fc in ((1100, 2400) if bark else (750, 1250, 2600)))
            x += y * env
            t0 += dur + rng.uniform(0.1, 0.6)
        info["f0_hz"] = round(f0, 1)
    elif kind == "air_brake":
        s = t - 0.5
        env = (s >= 0) * np.exp(-np.maximum(s, 0) / rng.uniform(0.3, 1.2)) * (1 - np.exp(-np.maximum(s, 0) / 0.01))
        x = signal.sosfilt(_sos("highpass", 2000, fs), rng.standard_normal(n)) * env
    else:  # impacts: metal bangs at a building site
        x = np.zeros(n)
        for tb in np.sort(rng.uniform(0.5, 0.5 + length, int(rng.integers(2, 9)))):
            s = t - tb
            y = sum(np.sin(2 * np.pi * f * s) for f in rng.uniform(150, 2500, 4))
            x += (s >= 0) * y * np.exp(-np.maximum(s, 0) / rng.uniform(0.15, 0.6))
    return x.astype(np.float32), info
