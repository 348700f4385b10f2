"""Sound sources of the TRAINING scene family (``simulators.noise_scene``), drawn from declared ranges.

Every random choice a source makes is drawn from ``RANGES`` below, so the corpus the classifier is trained on
(``dozor noise train``) is described by this one table, and a reviewer can compare it with what real streets
span. The independent evaluation family (``simulators.street_scenes``) is written separately from a spec
and shares nothing with this module but the ``Scene`` type.

Each generator takes the random generator and the time axis of its window (seconds) and returns
``(signal, meta)``; the scene scales each signal to its labelled level.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

C_SOUND = 343.0

# Declared random ranges (uniform unless a list of choices). Levels are LAFmax at 7.5 m in dB unless noted.
RANGES: dict[str, object] = {
    "distance_m": (3.0, 15.0),
    "full_scale_db": [120.0, 130.0, 130.0, 135.0],  # MEMS -26 dBFS (120), IM69D130 (130), IM73A135 (135)
    "background_laeq_db": (45.0, 72.0),
    "background_tilt": (0.4, 2.0),  # power spectrum ~ f^-tilt
    "background_lowpass_hz": (1500.0, 16000.0),
    "background_lf_boost_db": (0.0, 18.0),  # extra 30-500 Hz rumble (trucks, buses, tram)
    "background_resonances": (0, 3),  # broad 60-450 Hz bumps (Q 1.5-6)
    "idle_hum_prob": 0.3,  # an idling diesel nearby: low harmonic series 20-60 Hz, up to ~500 Hz
    "far_cars_mean": 2.0,
    "far_car_db": (60.0, 74.0),
    "exhaust_db": (86.0, 110.0),
    "legal_db": (64.0, 83.0),
    "speed_mps": (5.0, 25.0),
    "car_cylinders": [2, 3, 4, 4, 5, 6, 8, 10, 12],
    "moto_cylinders": [1, 2, 2, 3, 4],
    "car_rpm": (1400.0, 5500.0),
    "moto_rpm": (2500.0, 10000.0),
    "rpm_sweep_loud": (0.75, 2.1),  # rpm_end / rpm_start
    "rpm_sweep_legal": (0.85, 1.2),
    "gear_changes_loud": (0, 2),
    "harmonic_to_noise_db_loud": (-14.0, 16.0),  # engine-order energy over broadband roar: weak to strong
    "harmonic_to_noise_db_legal": (-14.0, 4.0),
    "harmonic_tilt": (0.1, 2.0),
    "half_order_db": (-30.0, -3.0),  # uneven firing (V-twins, boxers): half orders
    "formant_hz": (150.0, 1800.0),
    "formant_db": (0.0, 12.0),
    "roar_band_hz": ((50.0, 300.0), (1500.0, 7000.0)),
    "roar_am_depth": (0.0, 0.9),
    "crackle_prob": 0.5,
    "horn_db": (86.0, 110.0),
    "horn_f1_hz": (280.0, 650.0),
    "horn_ratio": (1.1, 1.4),
    "horn_single_tone_prob": 0.25,
    "horn_honks": (1, 3),
    "horn_honk_s": (0.15, 1.4),
    "ev_siren_db": (90.0, 112.0),
    "ev_siren_kinds": ["ev_siren_yelp", "ev_siren_wail", "ev_siren_hilo", "ev_siren_two_tone"],
    "ev_low_hz": (450.0, 900.0),
    "ev_high_hz": (1100.0, 1900.0),
    "yelp_period_s": (0.15, 0.45),
    "wail_period_s": (2.0, 6.0),
    "hilo_period_s": (0.6, 1.6),
    "hilo_ratio": (1.2, 1.45),
    "cd_siren_mic_db": (80.0, 104.0),
    "cd_low_hz": (230.0, 450.0),
    "cd_high_hz": (420.0, 720.0),
    "cd_period_s": (6.0, 16.0),
    "wind_mic_db": (75.0, 100.0),
    "rain_laeq_db": (50.0, 70.0),
}


def u(rng: np.random.Generator, key: str, ranges: dict = RANGES) -> float:
    """A uniform draw from the declared range ``ranges[key]`` (a float in [lo, hi))."""
    lo, hi = ranges[key]
    return float(rng.uniform(lo, hi))


def ui(rng: np.random.Generator, key: str, ranges: dict = RANGES) -> int:
    """A uniform integer draw from the declared range ``ranges[key]`` (both ends included)."""
    lo, hi = ranges[key]
    return int(rng.integers(lo, hi + 1))


def pick(rng: np.random.Generator, key: str):
    opts = RANGES[key]
    return opts[int(rng.integers(0, len(opts)))]  # type: ignore[arg-type]


def norm(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(x**2) + 1e-20)


def pink(rng: np.random.Generator, n: int, tilt: float = 1.0) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=float)
    f[0] = 1.0
    return np.fft.irfft(spec / f ** (tilt / 2), n)


def band_noise(rng: np.random.Generator, n: int, lo: float, hi: float, fs: int, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, [lo, min(hi, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n))


def phase(freq: np.ndarray, fs: int) -> np.ndarray:
    return 2 * np.pi * np.cumsum(freq) / fs


def passby(t: np.ndarray, t_peak: float, speed: float, dist: float) -> tuple[np.ndarray, np.ndarray]:
    """(gain 1/r normalised to 1 at closest approach, Doppler factor) of a source on a straight lane."""
    x = speed * (t - t_peak)
    r = np.sqrt(dist**2 + x**2)
    return dist / r, 1.0 / (1.0 + speed * x / r / C_SOUND)


def envelope(n: int, fs: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n)
    na, nr = min(n, max(1, int(attack * fs))), min(n, max(1, int(release * fs)))
    env[:na] = np.linspace(0, 1, na)
    env[-nr:] = np.minimum(env[-nr:], np.linspace(1, 0, nr))
    return env


def harmonic_tone(ph: np.ndarray, amps: np.ndarray) -> np.ndarray:
    """sum_k amps[k-1] sin(k (ph + 1.7)): a tone with the harmonic envelope ``amps`` (fixed phases, no draws)."""
    return sum(float(a) * np.sin((i + 1) * (ph + 1.7)) for i, a in enumerate(amps))


def square_tone(ph: np.ndarray, n_odd: int = 4, even: float = 0.0) -> np.ndarray:
    out = sum(np.sin((2 * k + 1) * ph) / (2 * k + 1) for k in range(n_odd))
    if even:
        out = out + even * sum(np.sin(2 * (k + 1) * ph) / (2 * (k + 1)) for k in range(n_odd))
    return out


# ---------------------------------------------------------------- background

def background(rng: np.random.Generator, n: int, fs: int) -> tuple[np.ndarray, dict[str, object]]:
    tilt = u(rng, "background_tilt")
    x = pink(rng, n, tilt)
    lp = u(rng, "background_lowpass_hz")
    x = signal.sosfilt(signal.butter(2, lp, "lowpass", fs=fs, output="sos"), x)
    x = norm(x)
    boost = u(rng, "background_lf_boost_db")
    lf = norm(band_noise(rng, n, 30, 500, fs)) * 10 ** (boost / 20) * 0.5
    parts = [x, lf]
    for _ in range(ui(rng, "background_resonances")):
        fc = float(rng.uniform(60, 450))
        q = float(rng.uniform(1.5, 6.0))
        b, a = signal.iirpeak(fc, q, fs=fs)
        parts.append(norm(signal.lfilter(b, a, rng.standard_normal(n))) * float(rng.uniform(0.3, 1.5)))
    hum = rng.random() < float(RANGES["idle_hum_prob"])  # type: ignore[arg-type]
    if hum:
        f0 = float(rng.uniform(20, 60)) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * np.arange(n) / fs))
        ph = phase(f0, fs)
        h = sum(k ** -0.8 * np.sin(k * ph + rng.uniform(0, 6)) for k in range(1, int(500 / f0.max()) + 1))
        parts.append(norm(h) * float(rng.uniform(0.3, 1.2)))
    meta = {"tilt": round(tilt, 2), "lowpass_hz": round(lp), "lf_boost_db": round(boost, 1), "idle_hum": hum}
    return sum(parts), meta


def rain(rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    hiss = band_noise(rng, n, float(rng.uniform(1500, 3000)), float(rng.uniform(9000, 15000)), fs)
    drops = (rng.random(n) < rng.uniform(80, 400) / fs) * rng.standard_normal(n) * 8
    return hiss + signal.sosfilt(signal.butter(2, 2500, "highpass", fs=fs, output="sos"), drops)


def wind(rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    w = band_noise(rng, n, float(rng.uniform(2, 8)), float(rng.uniform(80, 180)), fs)
    gust = np.hanning(n) ** float(rng.uniform(0.5, 2.5))
    slow = norm(band_noise(rng, n, 0.3, 3.0, fs))
    return w * gust * np.clip(1 + 0.5 * slow, 0.2, 3.0)


# ---------------------------------------------------------------- vehicles

def engine(rng: np.random.Generator, t: np.ndarray, fs: int, *, loud: bool, moto: bool, t_peak: float,
           speed: float, dist: float, rpm0: float | None = None,
           rpm_boost: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, object]]:
    """``rpm0``: the starting rpm, drawn by the caller (``noise_wide``: a fast engine), else from RANGES;
    ``rpm_boost``: the rpm's relative climb over ``t`` while a throttle is open (``noise_throttle``), else none."""
    cyl = int(pick(rng, "moto_cylinders" if moto else "car_cylinders"))
    drawn = u(rng, "moto_rpm" if moto else "car_rpm")
    rpm0 = drawn if rpm0 is None else rpm0
    rpm1 = rpm0 * u(rng, "rpm_sweep_loud" if loud else "rpm_sweep_legal")
    ts = t - t[0]
    dur = ts[-1] if ts[-1] > 0 else 1.0
    rpm = rpm0 + (rpm1 - rpm0) * ts / dur
    if loud:
        for _ in range(ui(rng, "gear_changes_loud")):  # rpm drops by 25-40 % at a shift, then climbs again
            at = dur * float(rng.uniform(0.2, 0.8))
            rpm = np.where(ts > at, rpm * float(rng.uniform(0.6, 0.75)), rpm)
        rpm = signal.sosfiltfilt(signal.butter(1, 8, fs=fs, output="sos"), rpm)  # shifts take ~0.1 s
    rpm = np.clip(rpm, 600, 14000)
    steady = rpm  # what the engine draws its orders from: a throttle's revs (below) leave every draw as it was
    if rpm_boost is not None:
        rpm = np.clip(rpm * (1.0 + rpm_boost), 600, 14000)
    f_fire = rpm / 60.0 * cyl / 2.0
    gain, dopp = passby(t, t_peak, speed, dist)
    ph_half = phase(rpm / 120.0 * dopp, fs)  # half engine order: the cycle frequency of a 4-stroke
    order = cyl  # firing frequency = cyl half orders
    tilt = u(rng, "harmonic_tilt")
    half_db = u(rng, "half_order_db")
    fmt_hz, fmt_db = u(rng, "formant_hz"), u(rng, "formant_db")
    f_steady = steady / 60.0 * cyl / 2.0
    fmax = float((f_steady * dopp).max())
    n_h = int(min(40, 6000 / max(fmax, 1.0)))
    f_med = float(np.median(f_steady))
    rpm_med = float(np.median(steady))
    uneven = cyl > 1 and half_db > -29  # uneven firing: orders between the firing harmonics
    # the engine orders m (multiples of the cycle frequency) that sound: firing orders and low half orders
    # synthesised at half the sample rate (the orders stay below 6 kHz) and interpolated: half the sines
    ph2 = ph_half[::2]
    harm = np.zeros_like(ph2)
    for m in range(1, n_h * order + 1):
        if m % order == 0:  # firing order k = m / order
            k = m // order
            fk = k * f_med
            boost = 10 ** (fmt_db * np.exp(-0.5 * (np.log2(fk / fmt_hz) / 0.5) ** 2) / 20)
            amp = k**-tilt * float(rng.uniform(0.4, 1.0)) * boost
        elif uneven and m < 3 * order and m * rpm_med / 120 < 3000:
            amp = 10 ** (half_db / 20) * m ** -tilt
        else:
            continue
        harm += amp * np.sin(m * ph2 + rng.uniform(0, 2 * np.pi))
    harm = signal.resample_poly(harm, 2, 1)[: t.size]
    lo, hi = (float(rng.uniform(*b)) for b in RANGES["roar_band_hz"])  # type: ignore[misc]
    ph_fire = order * ph_half
    roar = band_noise(rng, t.size, lo, hi, fs) * (1 + u(rng, "roar_am_depth") * np.sin(ph_fire))
    h2n = u(rng, "harmonic_to_noise_db_loud" if loud else "harmonic_to_noise_db_legal")
    mix = norm(harm) * 10 ** (h2n / 20) + norm(roar)
    if not loud:  # tyres dominate a legal car
        tyre = band_noise(rng, t.size, float(rng.uniform(300, 700)), float(rng.uniform(1800, 4000)), fs)
        mix = float(rng.uniform(0.2, 0.6)) * norm(mix) + norm(tyre)
    crackle = loud and rng.random() < float(RANGES["crackle_prob"])  # type: ignore[arg-type]
    if crackle:  # exhaust pops: short loud bursts
        pops = np.zeros_like(t)
        for p in rng.integers(0, t.size, size=int(rng.integers(3, 20))):
            m = min(240, t.size - p)
            pops[p: p + m] += rng.uniform(1, 3) * np.exp(-np.arange(m) / rng.uniform(15, 60))
        pop_band = signal.butter(2, [float(rng.uniform(100, 400)), 4000], "bandpass", fs=fs, output="sos")
        mix = mix + signal.sosfilt(pop_band, pops) * float(rng.uniform(2, 8))
    direct = 1 + float(rng.uniform(-0.3, 0.5)) * np.tanh(speed * (t - t_peak) / 10)  # exhaust at the rear
    meta = {"cylinders": cyl, "rpm": [round(float(rpm.min())), round(float(rpm.max()))],
            "f0_hz": [round(float(f_fire.min()), 1), round(float(f_fire.max()), 1)],
            "harmonic_to_noise_db": round(h2n, 1), "crackle": bool(crackle)}
    return mix * gain * direct, meta


def horn(rng: np.random.Generator, t: np.ndarray, fs: int,
         amps: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, object]]:
    """``amps``: harmonic envelope of the tones (``noise_wide.tone_amps``), else square-ish."""
    f1 = u(rng, "horn_f1_hz")
    ratio = u(rng, "horn_ratio")
    single = rng.random() < float(RANGES["horn_single_tone_prob"])  # type: ignore[arg-type]
    vib = 1 + 0.003 * np.sin(2 * np.pi * rng.uniform(3, 8) * t)
    n_odd, even = int(rng.integers(3, 9)), float(rng.uniform(0, 0.6))
    tone = (lambda ph: square_tone(ph, n_odd, even)) if amps is None else (lambda ph: harmonic_tone(ph, amps))
    x = tone(phase(f1 * vib, fs))
    if not single:
        x = x + float(rng.uniform(0.5, 1.0)) * tone(phase(f1 * ratio * vib, fs) + 1.0)
    env = np.zeros(t.size)
    honks = ui(rng, "horn_honks")
    pos = 0
    for _ in range(honks):
        m = int(u(rng, "horn_honk_s") * fs)
        m = min(m, t.size - pos)
        if m <= 0:
            break
        env[pos: pos + m] = envelope(m, fs, 0.015, 0.04)
        pos += m + int(rng.uniform(0.08, 0.4) * fs)
    return x * env, {"f_hz": [round(f1, 1)] + ([] if single else [round(f1 * ratio, 1)]),
                     "ratio": None if single else round(ratio, 3), "honks": honks}


def cd_siren(rng: np.random.Generator, t: np.ndarray, fs: int, two_tone: bool) -> tuple[np.ndarray, dict]:
    ts = t - t[0]
    f_lo, f_hi = u(rng, "cd_low_hz"), u(rng, "cd_high_hz")
    if f_hi < f_lo * 1.15:
        f_hi = f_lo * 1.3
    if two_tone and rng.random() < 0.5:
        f = np.full_like(ts, float(rng.uniform(f_lo, f_hi)))
        pattern = "steady"
    else:
        period = u(rng, "cd_period_s")
        f = f_lo + (f_hi - f_lo) * 0.5 * (1 - np.cos(2 * np.pi * ts / period))
        pattern = "wail"
    f = f * np.minimum(1.0, 0.3 + ts / float(rng.uniform(2, 5)))  # rotor run-up
    ph = phase(f, fs)
    n_odd = int(rng.integers(2, 6))
    x = square_tone(ph, n_odd)
    if two_tone:
        x = x + square_tone(ph * 6 / 5 + 0.5, n_odd)
    rot = 1 + float(rng.uniform(0.2, 0.7)) * np.sin(2 * np.pi * ts / rng.uniform(6, 16) + rng.uniform(0, 6))
    x = x * rot * envelope(t.size, fs, 1.0, 2.0)
    return x, {"pattern": pattern, "f_hz": [round(float(f.min()), 1), round(float(f.max()), 1)]}


def ev_siren(rng: np.random.Generator, t: np.ndarray, fs: int, kind: str, *, t_peak: float, speed: float,
             dist: float, amps: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    ts = t - t[0]
    lo, hi = u(rng, "ev_low_hz"), u(rng, "ev_high_hz")
    if kind == "ev_siren_yelp":
        period = u(rng, "yelp_period_s")
        frac = (ts / period) % 1.0
        f = lo + (hi - lo) * np.where(frac < 0.5, 2 * frac, 2 - 2 * frac)
    elif kind == "ev_siren_wail":
        period = u(rng, "wail_period_s")
        f = lo + (hi - lo) * 0.5 * (1 - np.cos(2 * np.pi * ts / period))
    else:  # hi-lo and the European two-tone: alternating steady tones
        period = u(rng, "hilo_period_s") * (1.6 if kind == "ev_siren_two_tone" else 1.0)
        f = np.where((ts / period) % 1.0 < 0.5, lo, lo * u(rng, "hilo_ratio"))
        f = signal.sosfiltfilt(signal.butter(1, 40, fs=fs, output="sos"), f)
    gain, dopp = passby(t, t_peak, speed, dist)
    x = square_tone(phase(f * dopp, fs), int(rng.integers(2, 6)), float(rng.uniform(0, 0.4)))
    if amps is not None:
        x = harmonic_tone(phase(f * dopp, fs), amps)
    eng = norm(band_noise(rng, t.size, 80, 1500, fs)) * float(rng.uniform(0.05, 0.4))
    return (norm(x) + eng) * gain, {"f_hz": [round(lo, 1), round(hi, 1)], "period_s": round(float(period), 3)}
