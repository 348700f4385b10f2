"""Throttle blips for the TRAINING scene family (issue 13): loud vehicles that rev as they pass.

A straight-piped car or motorcycle in town is rarely at steady throttle: its rider blips the throttle at the
lights, re-opens it after a shift or an overrun, and rev-bombs for the sound of it. Each opening is a
*sustained* rise of 5-25 dB within tens of milliseconds that holds for a fraction of a second to a second
(the engine's firing orders and its turbulence climb together, and the rpm with them); between openings the
throttle is closed and the exhaust is quieter. The training family's engines used to follow the pass-by
envelope and a slow rpm ramp only, so a steep sustained rise was something only a horn switching on made in
the corpus, and the classifier learnt ``onset`` as horn evidence: exhausts revving at the microphone scored as
horns or under the enforcement score.

``noise_scene.generate(mix={"throttle": p, ...})`` gives each loud vehicle of the base engine model
(``noise_sources.engine``) and of the pulse-train model (``noise_extras.pulse_exhaust``) a throttle with
probability ``p``; ``STREET_MIX`` and ``dozor noise train``'s ``TRAIN_MIX`` turn it on. The draws come from
their own random generator, so a scene without ``throttle`` is unchanged. One opening always covers the
vehicle's labelled closest approach (``t_peak``), so its LAFmax and its label stay where they were; the others
fall within ``spread_s`` of it. Every choice is drawn from ``THROTTLE_RANGES`` (listed in docs/noise-scenes.md).
"""

from __future__ import annotations

import numpy as np

THROTTLE_RANGES: dict[str, object] = {
    "blips": (1, 4),  # openings per pass-by (one covers the closest approach)
    "closed_db": (5.0, 25.0),  # how much quieter the exhaust is with the throttle closed
    "rise_s": (0.015, 0.08),  # an opening: closed to open within this long
    "hold_s": (0.15, 1.2),  # held open this long
    "fall_s": (0.15, 1.0),  # closing (the level falls over this long)
    "spread_s": (1.0, 4.0),  # the other openings fall within this of the closest approach
    "rev": (0.1, 0.6),  # the rpm climbs by this share while the throttle is open (base engine model)
}


def u(rng: np.random.Generator, key: str) -> float:
    lo, hi = THROTTLE_RANGES[key]  # type: ignore[misc]
    return float(rng.uniform(lo, hi))


def envelope(rng: np.random.Generator, t: np.ndarray, t_peak: float) -> tuple[np.ndarray, dict[str, object]]:
    """The throttle opening over the time axis ``t`` (seconds): 0 closed, 1 open; and its labels."""
    lo, hi = THROTTLE_RANGES["blips"]  # type: ignore[misc]
    n = int(rng.integers(lo, hi + 1))
    spread = u(rng, "spread_s")
    env = np.zeros(t.size)
    starts = []
    for i in range(n):
        rise, hold, fall = u(rng, "rise_s"), u(rng, "hold_s"), u(rng, "fall_s")
        if i == 0:  # open at the closest approach: the vehicle's LAFmax stays there
            a = t_peak - rise - float(rng.uniform(0.1, 0.9)) * hold
        else:
            a = t_peak + float(rng.uniform(-spread, spread))
        starts.append(round(a, 3))
        x = t - a
        up = np.clip(x / rise, 0.0, 1.0)
        up = 0.5 - 0.5 * np.cos(np.pi * up)  # a smooth opening, over within rise_s
        down = np.where(x > rise + hold, np.exp(-(x - rise - hold) / (fall / 3.0)), 1.0)
        env = np.maximum(env, np.where(x < 0, 0.0, up * down))
    closed = u(rng, "closed_db")
    return env, {"throttle_blips": n, "throttle_closed_db": round(closed, 1), "throttle_starts": starts}


def throttle(rng: np.random.Generator, t: np.ndarray, t_peak: float) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """One vehicle's throttle over ``t``: the amplitude gain, the rpm's relative climb (for
    ``noise_sources.engine``'s ``rpm_boost``) and the labels. The gain uses the labelled closed level
    (0.1 dB), so a scene's audio follows from its labels."""
    env, meta = envelope(rng, t, t_peak)
    return gain(env, float(meta["throttle_closed_db"])), u(rng, "rev") * env, meta


def gain(env: np.ndarray, closed_db: float) -> np.ndarray:
    """Amplitude gain of a throttle envelope: ``-closed_db`` dB closed, 0 dB open."""
    c = 10 ** (-closed_db / 20)
    return c + (1 - c) * env
