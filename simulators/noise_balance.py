"""Spectral balance of a vehicle's sound for the TRAINING scene family (issue 13, twenty-first session).

The training family's engines draw their harmonics with a falling envelope over a broadband roar, so most of
their energy sits below 500 Hz: over the committed corpus, loud exhausts have a median of 29 % of their energy
in 500 Hz – 2 kHz (the feature ``low_mid_frac``), and only 10 % of them more than 58 %. A real vehicle's balance
varies much more: a silencer's chambers, a pipe's resonance, the body between the outlet and the kerb can put
most of it in any octave from 100 Hz to 2 kHz. Over-limit exhausts of the independent family had 55–94 % there,
a share the corpus mostly gives sirens, and the classifier kept their probability under the enforcement gate.

``balance(rng, x, fs, p)``, with probability ``p``, gives a vehicle's sound one broad dominant resonance (a
pipe's or a silencer's, ``resonance_db`` over the rest, ``resonance_oct`` wide, centred at ``resonance_hz``) and
rolls it off above twice that frequency (``rolloff_db_per_oct``). ``noise_scene.generate(mix={"balance": p})``
applies it to every vehicle the scene makes (loud exhausts, legal cars, heavy vehicles and legal motorcycles
alike), so a balance says nothing about the class. It draws from its own random generator, so scenes
without ``balance`` are unchanged. Every choice is drawn from ``BALANCE_RANGES`` (listed in docs/noise-scenes.md).
"""

from __future__ import annotations

import numpy as np

BALANCE_RANGES: dict[str, tuple[float, float]] = {
    "resonance_hz": (80.0, 2000.0),  # drawn log-uniform
    "resonance_db": (6.0, 24.0),
    "resonance_oct": (0.4, 1.5),  # standard deviation of the bump in octaves
    "rolloff_db_per_oct": (0.0, 12.0),  # above twice the resonance
}


def balance(rng: np.random.Generator, x: np.ndarray, fs: int, p: float) -> tuple[np.ndarray, dict[str, float]]:
    """(x with a dominant low resonance with probability ``p``, the draw as label metadata; {} if not)."""
    if p <= 0 or rng.random() >= p:
        return x, {}
    lo, hi = BALANCE_RANGES["resonance_hz"]
    fc = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    db = float(rng.uniform(*BALANCE_RANGES["resonance_db"]))
    octs = float(rng.uniform(*BALANCE_RANGES["resonance_oct"]))
    slope = float(rng.uniform(*BALANCE_RANGES["rolloff_db_per_oct"]))
    n = x.size
    f = np.maximum(np.fft.rfftfreq(n, 1 / fs), 1.0)
    gain_db = db * np.exp(-0.5 * (np.log2(f / fc) / octs) ** 2)
    gain_db -= slope * 0.5 * np.log2(1.0 + (f / (2 * fc)) ** 2)  # ~0 below 2 fc, -slope dB/oct above
    y = np.fft.irfft(np.fft.rfft(x) * 10 ** (gain_db / 20), n)
    return y, {"balance_hz": round(fc, 1), "balance_db": round(db, 1), "balance_oct": round(octs, 2),
               "balance_rolloff_db_oct": round(slope, 1)}
