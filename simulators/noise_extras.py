"""More sources for the TRAINING scene family (``simulators.noise_scene``), drawn from the ranges in ``EXTRA_RANGES``.

Issue 13 asks the training family to span what real streets span, not one generator's habits. These sources
widen it; they are switched on by the ``street`` mix keys of ``noise_scene.generate`` (``heavy``, ``moto_legal``,
``pair``, ``pulse``, ``voices``, ``birds``, ``far_siren``, ``air_horn``, ``horn_passby``) and draw from their
own random generator, so scenes without them are bit-identical to before.

- exhausts as *pulse trains*: one blow-down pulse per firing (uneven firing intervals, jitter), through a pipe
  resonance (an IIR comb at the pipe's round-trip delay) and a low-pass, plus pulse-synchronous turbulence;
- heavy vehicles (bus/truck diesel, 700-2200 rpm, loud tyres) and motorcycles with legal silencers: loud,
  harmonic, and *not* exhausts;
- a second vehicle passing close behind an exhaust (overlapping sources);
- horns: car two-tone (ratio 1.1-1.4, sometimes exactly 6:5) and truck air-horn chords, sounded from a moving
  vehicle (Doppler) during its pass-by;
- a siren far away (stationary, no Doppler), with soft-clipped (driven) waveforms;
- voices (harmonic series with formants) and bird chirps: narrow tones that are not sirens.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from simulators import noise_sources as src

EXTRA_RANGES: dict[str, object] = {
    "pulse_prob": 0.5,  # share of loud exhausts synthesised as pulse trains instead of harmonic stacks
    "pulse_width_ms": (0.2, 2.0),
    "pulse_jitter": (0.0, 0.08),  # firing-interval irregularity, fraction of the interval
    "pulse_uneven": (0.0, 0.25),  # V-twin / crossplane unevenness: fraction of the interval
    "pipe_len_m": (0.5, 2.8),
    "gas_c_mps": (380.0, 600.0),
    "pipe_reflect": (0.2, 0.9),
    "pipe_lowpass_hz": (600.0, 4000.0),
    "turbulence_db": (-22.0, -4.0),
    "heavy_db": (74.0, 93.0),
    "heavy_rpm": (650.0, 2300.0),
    "heavy_cylinders": [4, 6, 6, 8],
    "moto_legal_db": (70.0, 89.0),
    "muffler_hz": (100.0, 450.0),
    "pair_gap_s": (0.3, 2.5),
    "pair_kinds": ["legal_car", "heavy", "moto_legal", "exhaust"],
    "horn_speed_mps": (0.0, 12.0),
    "horn_six_fifths_prob": 0.3,
    "air_horn_f_hz": (140.0, 380.0),
    "siren_drive": (1.0, 6.0),
    "far_siren_mic_db": (72.0, 100.0),
    "far_siren_s": (8.0, 30.0),
    "voice_mic_db": (60.0, 88.0),
    "voice_f0_hz": (85.0, 280.0),
    "bird_mic_db": (55.0, 85.0),
    "bird_hz": (1800.0, 7500.0),
}


def u(rng: np.random.Generator, key: str) -> float:
    lo, hi = EXTRA_RANGES[key]  # type: ignore[misc]
    return float(rng.uniform(lo, hi))


def pick(rng: np.random.Generator, key: str):
    opts = EXTRA_RANGES[key]
    return opts[int(rng.integers(0, len(opts)))]  # type: ignore[arg-type]


def _rpm_story(rng: np.random.Generator, ts: np.ndarray, fs: int, lo: float, hi: float) -> np.ndarray:
    """A throttle story: accelerate with gear changes, blips, overrun or cruise (rpm per sample)."""
    kind = int(rng.integers(0, 4))
    dur = max(float(ts[-1]), 1e-3)
    r0 = float(rng.uniform(lo, hi))
    if kind == 0:  # gears: climb, drop at each shift
        rate = float(rng.uniform(600, 3000))
        rpm = r0 + rate * ts
        top = float(rng.uniform(max(lo * 1.3, r0), hi * 1.1))
        while rpm.max() > top:
            at = int(np.argmax(rpm > top))
            rpm[at:] = rpm[at:] * float(rng.uniform(0.6, 0.78))
    elif kind == 1:  # blips
        rpm = np.full_like(ts, r0 * 0.6)
        every = float(rng.uniform(0.7, 3.0))
        ph = (ts + float(rng.uniform(0, every))) % every
        rpm = rpm * (1 + float(rng.uniform(0.5, 1.6)) * np.exp(-ph / float(rng.uniform(0.15, 0.5))))
    elif kind == 2:  # overrun: falling rpm
        rpm = r0 * (1 - float(rng.uniform(0.2, 0.55)) * ts / dur)
    else:  # cruise
        rpm = r0 * (1 + 0.02 * np.sin(2 * np.pi * ts / float(rng.uniform(2, 8))))
    return signal.sosfiltfilt(signal.butter(1, 6, fs=fs, output="sos"), rpm)


def _comb(x: np.ndarray, delay: int, refl: float) -> np.ndarray:
    """y[n] = x[n] + refl * y[n - delay] (the pipe's round trip), a block of ``delay`` samples at a time."""
    n = x.size
    y = np.zeros(((n + delay - 1) // delay) * delay)
    y[:n] = x
    blocks = y.reshape(-1, delay)
    for i in range(1, blocks.shape[0]):
        blocks[i] += refl * blocks[i - 1]
    return y[:n]


def pulse_exhaust(rng: np.random.Generator, t: np.ndarray, fs: int, *, moto: bool, t_peak: float, speed: float,
                  dist: float, rpm_range: tuple[float, float] | None = None,
                  pops=None) -> tuple[np.ndarray, dict[str, object]]:
    """A straight pipe as a pulse train: one pulse per firing through a pipe resonance. ``rpm_range``
    overrides the family's rpm range (a fast engine); ``pops(n, pulse_peak)`` adds overrun crackle."""
    cyl = int(src.pick(rng, "moto_cylinders" if moto else "car_cylinders"))
    lo, hi = rpm_range or src.RANGES["moto_rpm" if moto else "car_rpm"]  # type: ignore[misc]
    ts = t - t[0]
    rpm = np.clip(_rpm_story(rng, ts, fs, lo, hi), 600, 14000)
    gain, dopp = src.passby(t, t_peak, speed, dist)
    cycles = np.cumsum(rpm / 120.0 * dopp) / fs  # engine cycles (received time)
    uneven = u(rng, "pulse_uneven") if cyl <= 2 or rng.random() < 0.3 else 0.0
    offs = (np.arange(cyl) + uneven * (np.arange(cyl) % 2)) / cyl
    jit = u(rng, "pulse_jitter")
    n_cyc = int(cycles[-1]) + 2
    fire = (np.arange(n_cyc)[:, None] + offs[None, :]).ravel()
    fire = fire + rng.normal(0, jit / cyl, fire.size)
    idx = np.searchsorted(cycles, fire)
    idx = idx[(idx > 0) & (idx < t.size)]
    train = np.zeros(t.size)
    np.add.at(train, idx, rng.uniform(0.6, 1.0, idx.size))
    w = u(rng, "pulse_width_ms") * 1e-3
    k = np.arange(int(5 * w * fs) + 2)
    pulse = np.exp(-k / (w * fs)) * (1 - np.exp(-k / (0.3 * w * fs + 1)))
    x = signal.fftconvolve(train, pulse)[: t.size]
    delay = max(2, int(round(2 * u(rng, "pipe_len_m") / u(rng, "gas_c_mps") * fs)))
    refl = u(rng, "pipe_reflect")
    x = _comb(x, delay, refl)
    x = signal.sosfilt(signal.butter(2, u(rng, "pipe_lowpass_hz"), fs=fs, output="sos"), x)
    x = x - signal.sosfilt(signal.butter(1, 20, fs=fs, output="sos"), x)  # no DC
    turb = src.band_noise(rng, t.size, 200, 6000, fs) * signal.sosfilt(
        signal.butter(1, 200, fs=fs, output="sos"), train)
    x = src.norm(x) + src.norm(turb) * 10 ** (u(rng, "turbulence_db") / 20)
    if pops is not None:
        x = x + pops(t.size, float(np.percentile(np.abs(x), 99.9)))
    tyre = src.band_noise(rng, t.size, float(rng.uniform(400, 800)), float(rng.uniform(1800, 4000)), fs)
    x = x + src.norm(tyre) * 10 ** (float(rng.uniform(-24, -8)) / 20)
    f_fire = rpm / 60 * cyl / 2
    meta = {"cylinders": cyl, "synthesis": "pulse", "rpm": [round(float(rpm.min())), round(float(rpm.max()))],
            "f0_hz": [round(float(f_fire.min()), 1), round(float(f_fire.max()), 1)]}
    return x * gain, meta


def heavy(rng: np.random.Generator, t: np.ndarray, fs: int, *, t_peak: float, speed: float,
          dist: float) -> tuple[np.ndarray, dict[str, object]]:
    """A bus or truck: a low-rpm diesel (strong low orders) under loud tyre and body noise."""
    cyl = int(pick(rng, "heavy_cylinders"))
    rpm = u(rng, "heavy_rpm") * (1 + float(rng.uniform(-0.2, 0.3)) * (t - t[0]) / max(float(t[-1] - t[0]), 1e-3))
    gain, dopp = src.passby(t, t_peak, speed, dist)
    ph = src.phase(rpm / 120 * dopp, fs)
    n_h = int(min(60, 2500 / (rpm.max() / 120)))
    harm = sum((m ** -float(rng.uniform(0.6, 1.4))) * (1.0 if m % cyl == 0 else float(rng.uniform(0.05, 0.5)))
               * np.sin(m * ph + rng.uniform(0, 6)) for m in range(1, n_h + 1))
    body = src.band_noise(rng, t.size, 40, float(rng.uniform(600, 2500)), fs)
    tyre = src.band_noise(rng, t.size, float(rng.uniform(400, 800)), float(rng.uniform(1800, 4000)), fs)
    x = (src.norm(harm) * 10 ** (float(rng.uniform(-8, 6)) / 20) + src.norm(body)
         + src.norm(tyre) * float(rng.uniform(0.5, 1.5)))
    return x * gain, {"cylinders": cyl, "rpm": round(float(np.median(rpm)))}


def moto_legal(rng: np.random.Generator, t: np.ndarray, fs: int, *, t_peak: float, speed: float,
               dist: float) -> tuple[np.ndarray, dict[str, object]]:
    """A motorcycle with a legal silencer: engine orders behind a low-pass muffler, tyres."""
    x, meta = src.engine(rng, t, fs, loud=True, moto=True, t_peak=t_peak, speed=speed, dist=dist)
    x = signal.sosfilt(signal.butter(2, u(rng, "muffler_hz"), fs=fs, output="sos"), x)
    tyre = src.band_noise(rng, t.size, float(rng.uniform(400, 800)), float(rng.uniform(1800, 4000)), fs)
    gain, _ = src.passby(t, t_peak, speed, dist)
    return src.norm(x) + src.norm(tyre * gain) * float(rng.uniform(0.3, 1.0)), meta


def horn_tones(rng: np.random.Generator, t: np.ndarray, fs: int, *, air: bool, t_peak: float,
               dist: float, amps: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, object]]:
    """A car two-tone/single horn or a truck air-horn chord, from a vehicle moving at 0-12 m/s."""
    speed = u(rng, "horn_speed_mps")
    _, dopp = src.passby(t, t_peak, speed, dist)
    if air:
        f = [u(rng, "air_horn_f_hz")]
        for _ in range(int(rng.integers(1, 3)) - 1 + int(rng.random() < 0.5)):
            f.append(f[-1] * float(rng.uniform(1.12, 1.5)))
    else:
        ratio = 1.2 if rng.random() < float(EXTRA_RANGES["horn_six_fifths_prob"]) else src.u(rng, "horn_ratio")
        f1 = src.u(rng, "horn_f1_hz")
        f = [f1] if rng.random() < 0.25 else [f1, f1 * ratio]
    n_odd, even = int(rng.integers(2, 9)), float(rng.uniform(0, 0.8))
    x = sum(float(rng.uniform(0.5, 1.0)) * (src.square_tone(src.phase(fi * dopp, fs) + rng.uniform(0, 6), n_odd, even)
                                            if amps is None else src.harmonic_tone(src.phase(fi * dopp, fs), amps))
            for fi in f)
    env = np.zeros(t.size)
    pos = int(rng.uniform(0, 0.3) * fs)
    for _ in range(int(rng.integers(1, 5))):
        m = min(int(float(rng.uniform(0.15, 1.8)) * fs), t.size - pos)
        if m <= 0:
            break
        env[pos: pos + m] = src.envelope(m, fs, float(rng.uniform(0.005, 0.05)), float(rng.uniform(0.02, 0.1)))
        pos += m + int(rng.uniform(0.08, 0.5) * fs)
    return x * env, {"f_hz": [round(v, 1) for v in f], "air": air, "speed_mps": round(speed, 2)}


def far_siren(rng: np.random.Generator, t: np.ndarray, fs: int,
              amps: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, object]]:
    """An emergency siren far away: stationary, soft-clipped waveform, no Doppler, slow level sway."""
    kind = str(src.pick(rng, "ev_siren_kinds"))
    x, meta = src.ev_siren(rng, t, fs, kind, t_peak=float(t[0]), speed=0.0, dist=1.0, amps=amps)
    drive = u(rng, "siren_drive")
    x = np.tanh(drive * src.norm(x)) / np.tanh(drive)
    sway = 1 + 0.3 * src.norm(src.band_noise(rng, t.size, 0.05, 0.5, fs, order=1))
    return x * np.clip(sway, 0.3, 2.0) * src.envelope(t.size, fs, 0.3, 0.5), {"pattern": kind, **meta}


def voice(rng: np.random.Generator, n: int, fs: int) -> tuple[np.ndarray, dict[str, object]]:
    """Talking or shouting: a gliding harmonic series (f0 85-280 Hz) through moving formants, syllable AM."""
    t = np.arange(n) / fs
    f0 = u(rng, "voice_f0_hz") * (1 + 0.08 * src.norm(src.band_noise(rng, n, 0.5, 4.0, fs, order=1)))
    ph = src.phase(f0, fs)
    h = sum(k ** -0.7 * np.sin(k * ph) for k in range(1, int(4000 / f0.max())))
    for fc in (float(rng.uniform(300, 900)), float(rng.uniform(900, 2600))):
        b, a = signal.iirpeak(fc, float(rng.uniform(2, 6)), fs=fs)
        h = h + 2 * signal.lfilter(b, a, h)
    am = np.clip(np.sin(2 * np.pi * float(rng.uniform(3, 6)) * t + rng.uniform(0, 6)), 0, None) ** 0.5
    return h * am, {"f0_hz": round(float(np.median(f0)), 1)}


def birds(rng: np.random.Generator, n: int, fs: int) -> tuple[np.ndarray, dict[str, object]]:
    """A bird phrase: short narrow chirps (frequency-modulated) 1.8-7.5 kHz."""
    x = np.zeros(n)
    for _ in range(int(rng.integers(3, 14))):
        m = int(float(rng.uniform(0.03, 0.25)) * fs)
        p = int(rng.integers(0, max(1, n - m)))
        fc = u(rng, "bird_hz")
        f = fc * (1 + float(rng.uniform(-0.3, 0.3)) * np.linspace(-1, 1, m))
        x[p: p + m] += np.sin(src.phase(f, fs)) * np.hanning(m)
    return x, {}
