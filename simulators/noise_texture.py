"""Sixth-pass variety for the TRAINING scene family (issue 13): textures, vehicle colourings, platoons.

``noise_scene.generate(mix={"texture": 1.0, ...})`` switches these on (opt-in: ``STREET_MIX`` and ``dozor noise
train``'s ``TRAIN_MIX`` leave them off, as the committed model was not trained on them); they draw from their own
random generator, so scenes without ``texture`` are unchanged. They
follow the issue's list of what real streets span, from physics, not from any other scene family:

- a background **texture** built from a few randomly placed bands of noise (centres 30 Hz-6 kHz, 0.3-2
  octaves wide), each with its own slow random amplitude modulation: a recording of a street is a changing
  mixture of distant sources, not one tilted spectrum; about half of the bands fall below 500 Hz (trams,
  idling buses, ventilation), some of them strong;
- a random **colouring** of each vehicle's sound: two to four broad resonances or notches (a silencer's
  chambers, the body, the pipe outlet's radiation) in log frequency, so the harmonic envelope of an engine,
  legal or loud, is not the generator's one smooth roll-off;
- **platoons**: several vehicles passing 0.8-3 s apart (a queue released by a traffic light), sometimes with a
  loud exhaust among them, so events overlap and the level between pass-bys dips by only a few dB;
- **rain** heavier than the base family's and **wind** whose buffeting reaches higher (up to 400 Hz).

Every choice is drawn from ``TEXTURE_RANGES`` (listed in docs/noise-scenes.md).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from simulators import noise_sources as src

TEXTURE_RANGES: dict[str, object] = {
    "texture_bands": (2, 6),  # randomly modulated noise bands in the background texture
    "texture_hz": (30.0, 6000.0),  # band centre (log-uniform)
    "texture_oct": (0.3, 2.0),  # band width, octaves
    "texture_db": (-15.0, 8.0),  # each band's level relative to the base background
    "texture_mod_hz": (0.03, 3.0),  # its amplitude modulation rate
    "texture_mod_depth": (0.0, 0.95),
    "colour_prob": 0.7,  # a vehicle's sound gets random broad resonances/notches
    "colour_bumps": (2, 4),
    "colour_db": (-10.0, 10.0),
    "colour_oct": (0.2, 1.0),  # width (std) of each bump in octaves
    "colour_hz": (80.0, 5000.0),
    "platoon_prob": 0.35,  # a queue of vehicles released together
    "platoon_size": (3, 7),
    "platoon_gap_s": (0.8, 3.0),
    "platoon_exhaust_prob": 0.35,  # one of its vehicles is a loud exhaust
    "heavy_rain_laeq_db": (60.0, 78.0),
    "heavy_rain_prob": 0.12,
    "wind_hi_hz": (150.0, 400.0),
}


def u(rng: np.random.Generator, key: str) -> float:
    return src.u(rng, key, TEXTURE_RANGES)


def ui(rng: np.random.Generator, key: str) -> int:
    return src.ui(rng, key, TEXTURE_RANGES)


def chance(rng: np.random.Generator, key: str) -> bool:
    return bool(rng.random() < float(TEXTURE_RANGES[key]))  # type: ignore[arg-type]


def _log_u(rng: np.random.Generator, key: str) -> float:
    lo, hi = TEXTURE_RANGES[key]  # type: ignore[misc]
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _slow(rng: np.random.Generator, n: int, fs: int, rate_hz: float) -> np.ndarray:
    """A smooth random signal (unit std) varying at about ``rate_hz``, at the sample rate ``fs``."""
    m = max(4, int(n / fs * rate_hz * 4) + 4)
    knots = rng.standard_normal(m)
    return np.interp(np.linspace(0, m - 1, n), np.arange(m), knots)


def band_texture(rng: np.random.Generator, n: int, fs: int, base_rms: float) -> tuple[np.ndarray, dict]:
    """Randomly modulated noise bands to add to a background whose rms is ``base_rms``."""
    out = np.zeros(n)
    centres = []
    spec_n = n
    f = np.fft.rfftfreq(spec_n, 1 / fs)
    for _ in range(ui(rng, "texture_bands")):
        fc = _log_u(rng, "texture_hz")
        width = u(rng, "texture_oct")
        shape = np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / fc) / (width / 2)) ** 2)
        band = np.fft.irfft(np.fft.rfft(rng.standard_normal(spec_n)) * shape, spec_n)
        band /= np.sqrt(np.mean(band**2)) + 1e-20
        depth = u(rng, "texture_mod_depth")
        env = np.clip(1 + depth * _slow(rng, n, fs, u(rng, "texture_mod_hz")), 0.05, None)
        out += band * env * base_rms * 10 ** (u(rng, "texture_db") / 20)
        centres.append(round(fc))
    return out, {"texture_hz": centres}


def colour(rng: np.random.Generator, x: np.ndarray, fs: int) -> np.ndarray:
    """``x`` through a random smooth EQ: a few broad resonances and notches in log frequency."""
    if not chance(rng, "colour_prob"):
        return x
    n = x.size
    f = np.maximum(np.fft.rfftfreq(n, 1 / fs), 1.0)
    gain_db = np.zeros(f.size)
    for _ in range(ui(rng, "colour_bumps")):
        fc = _log_u(rng, "colour_hz")
        gain_db += u(rng, "colour_db") * np.exp(-0.5 * (np.log2(f / fc) / u(rng, "colour_oct")) ** 2)
    return np.fft.irfft(np.fft.rfft(x) * 10 ** (gain_db / 20), n)


def platoon(rng: np.random.Generator, duration_s: float) -> list[tuple[float, bool]]:
    """(t_peak, loud) of the vehicles of a platoon, or [] (none in this scene)."""
    if not chance(rng, "platoon_prob"):
        return []
    size = ui(rng, "platoon_size")
    t = float(rng.uniform(3.0, max(3.5, duration_s * 0.5)))
    loud_at = int(rng.integers(0, size)) if chance(rng, "platoon_exhaust_prob") else -1
    out = []
    for k in range(size):
        if t > duration_s - 3.0:
            break
        out.append((t, k == loud_at))
        t += u(rng, "platoon_gap_s")
    return out


def wind(rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    """Buffeting whose energy reaches higher than the base family's (a gust on a windscreen-less capsule)."""
    hi = u(rng, "wind_hi_hz")
    sos = signal.butter(2, [float(rng.uniform(3, 15)), hi], btype="bandpass", fs=fs, output="sos")
    w = signal.sosfilt(sos, rng.standard_normal(n))
    gust = np.hanning(n) ** float(rng.uniform(0.3, 2.0))
    return w * gust * np.clip(1 + 0.7 * _slow(rng, n, fs, float(rng.uniform(0.5, 4.0))), 0.1, 3.0)
