"""Domain randomisation for the TRAINING scene family (issue 13): modelling choices drawn per scene.

``noise_scene.generate(mix={"wide": 1.0, ...})`` switches these on (``STREET_MIX`` and ``dozor noise train``'s
``TRAIN_MIX`` do); they draw from their own random generator, so scenes without ``wide`` are unchanged. The
point is that the classifier must not depend on one generator's way of making a sound:

- tonal sources (horns, sirens) get one of three harmonic envelopes: the square-ish odd-harmonic tone of the
  base family, a full comb with a smooth roll-off (sawtooth-like, e.g. a mechanical siren's rotor ports), or a
  pulse train through a resonance (an electric disc horn's diaphragm striking a bell);
- engines: some loud vehicles rev high (firing frequencies above 250 Hz), pulse-train exhausts get overrun
  crackle (pops up to 14 dB above the firing pulses);
- the background gets a random smooth spectral ripple (a recorded texture is never a clean 1/f tilt) and a
  slow level sway;
- a ground reflection (an image source under the road, reflection coefficient ``ground_q``) for a microphone
  ``mic_height_m`` above the road: comb-filter notches that move with the lane distance.

Every choice is drawn from ``WIDE_RANGES`` (listed in docs/noise-scenes.md).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

C_SOUND = 343.0

WIDE_RANGES: dict[str, object] = {
    "tone_envelopes": ["square", "comb", "bell"],  # harmonic envelope of a horn or siren tone
    "comb_tilt": (0.3, 1.5),  # comb envelope: amplitude ~ k^-tilt
    "bell_order": (1.0, 5.0),  # bell envelope: resonance at this harmonic number
    "bell_q": (1.0, 6.0),
    "fast_engine_prob": 0.25,  # a loud vehicle revving high
    "car_rpm_fast": (5500.0, 8000.0),
    "moto_rpm_fast": (10000.0, 13500.0),
    "pulse_crackle_prob": 0.5,
    "crackle_per_s": (0.5, 40.0),
    "crackle_db_rel": (-6.0, 20.0),  # pop peak relative to the firing-pulse peak
    "background_ripple_db": (0.0, 6.0),  # std of the smooth random spectral ripple of the background
    "background_sway_db": (0.0, 4.0),  # slow (0.02-0.3 Hz) level fluctuation of the background, std
    "ground_reflection_prob": 0.5,
    "ground_q": (0.5, 0.95),
    "mic_height_m": (1.2, 4.0),
    "source_height_m": (0.3, 1.8),
}


def u(rng: np.random.Generator, key: str) -> float:
    lo, hi = WIDE_RANGES[key]  # type: ignore[misc]
    return float(rng.uniform(lo, hi))


def chance(rng: np.random.Generator, key: str) -> bool:
    return bool(rng.random() < float(WIDE_RANGES[key]))  # type: ignore[arg-type]


def tone_amps(rng: np.random.Generator, f_max_hz: float, fs: int) -> tuple[str, np.ndarray]:
    """(envelope name, harmonic amplitudes k = 1..K) of a tone whose fundamental reaches ``f_max_hz``."""
    kinds = WIDE_RANGES["tone_envelopes"]
    kind = str(kinds[int(rng.integers(0, len(kinds)))])  # type: ignore[arg-type]
    k_max = int(max(1, min(14, 0.42 * fs / max(f_max_hz, 1.0))))
    k = np.arange(1, k_max + 1, dtype=float)
    if kind == "square":
        amps = np.where(k % 2 == 1, 1 / k, float(rng.uniform(0, 0.3)) / k)
    elif kind == "comb":
        amps = k ** -u(rng, "comb_tilt")
    else:
        kc, q = u(rng, "bell_order"), u(rng, "bell_q")
        amps = 1 / np.sqrt(1 + q * q * (k / kc - kc / k) ** 2)
    return kind, amps


def pops(rng: np.random.Generator, n: int, fs: int, pulse_peak: float) -> np.ndarray:
    """Overrun crackle: a Poisson stream of short band-limited bursts during a random part of the window."""
    out = np.zeros(n)
    a = int(rng.uniform(0, 0.6) * n)
    b = min(n, a + int(rng.uniform(0.2, 0.6) * n))
    count = int(rng.poisson(u(rng, "crackle_per_s") * (b - a) / fs))
    if count == 0 or b <= a:
        return out
    peak = pulse_peak * 10 ** (u(rng, "crackle_db_rel") / 20)
    for p in rng.integers(a, b, size=count):
        m = min(int(rng.uniform(0.002, 0.012) * fs), n - int(p))
        if m > 4:
            out[p: p + m] += peak * float(rng.uniform(0.5, 1.0)) * rng.standard_normal(m) * np.exp(
                -np.arange(m) / (0.3 * m))
    band = signal.butter(2, [float(rng.uniform(150, 500)), float(rng.uniform(3000, 9000))], "bandpass", fs=fs,
                         output="sos")
    return signal.sosfilt(band, out)


def texture(rng: np.random.Generator, x: np.ndarray, fs: int) -> np.ndarray:
    """A background with a smooth random spectral ripple (in log frequency) and a slow level sway."""
    n = x.size
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1 / fs)
    lf = np.log2(np.maximum(f, 20.0) / 20.0)  # octaves above 20 Hz (0..10)
    knots = rng.standard_normal(14) * u(rng, "background_ripple_db")
    ripple_db = np.interp(lf, np.linspace(0, 10, knots.size), knots)
    y = np.fft.irfft(spec * 10 ** (ripple_db / 20), n)
    sway_db = u(rng, "background_sway_db")
    if sway_db > 0 and n > fs:
        slow = signal.sosfiltfilt(signal.butter(1, [0.02, 0.3], "bandpass", fs=100, output="sos"),
                                  rng.standard_normal(n // (fs // 100) + 2))
        slow = slow / (np.std(slow) + 1e-12) * sway_db
        env = np.interp(np.arange(n) / fs, np.arange(slow.size) / 100, slow)
        y = y * 10 ** (env / 20)
    return y


def reflection(rng: np.random.Generator, dist: float) -> tuple[int | float, float] | None:
    """(delay s, coefficient) of a ground reflection for this scene's geometry, or None (no hard ground)."""
    if not chance(rng, "ground_reflection_prob"):
        return None
    q = u(rng, "ground_q")
    hm, hs = u(rng, "mic_height_m"), u(rng, "source_height_m")
    direct = np.hypot(dist, hm - hs)
    image = np.hypot(dist, hm + hs)
    return float((image - direct) / C_SOUND), q * float(direct / image)


def reflect(x: np.ndarray, fs: int, refl: tuple[float, float]) -> np.ndarray:
    """x plus its delayed, attenuated image (fractional delay by linear interpolation)."""
    delay, g = refl
    d = delay * fs
    i, frac = int(d), d - int(d)
    y = x.copy()
    if i + 1 < x.size:
        y[i:] += g * (1 - frac) * x[: x.size - i]
        y[i + 1:] += g * frac * x[: x.size - i - 1]
    return y
