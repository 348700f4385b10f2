"""The held-out street-scene family (family name ``holdout``), a third generator for issue 13.

Written from docs/noise-scenes.md ("Held-out family") by someone who read neither the classifier nor the
other two scene generators; it shares only the ``Scene`` type and the label field names. Its modelling
choices (rpm-driven engines with per-harmonic envelopes and exhaust-pipe formants, Doppler by evaluating the
source at closed-form emission times, 1/r plus ISO 9613-1 air absorption, EN 1793-3 traffic spectra with
random band deviations, rain as drop resonances) are documented there with the declared ranges.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from simulators.noise_scene import Scene

from . import textures
from .scene import VERSION, Builder, vehicle_params
from .spec import COUNTS, QUIET, RANGES, Draws, quiet

__all__ = ["QUIET", "RANGES", "generate", "quiet", "scene_seeds", "scenes"]
FAMILY = "holdout"


def scene_seeds(count: int, seed: int) -> list[int]:
    """Seeds of ``scenes(count, seed)``: consecutive members of one SplitMix-style sequence (64-bit)."""
    out, x = [], (int(seed) * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) & (2 ** 64 - 1)
    for _ in range(count):
        x = (x + 0x9E3779B97F4A7C15) & (2 ** 64 - 1)
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2 ** 64 - 1)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2 ** 64 - 1)
        out.append((z ^ (z >> 31)) >> 32)
    return out


def scenes(count: int, seed: int, **kwargs) -> Iterator[Scene]:
    for s in scene_seeds(count, seed):
        yield generate(s, **kwargs)


def _calibration(seed: int, duration_s: float, fs: int, full_scale_db: float, level_db: float) -> Scene:
    n = int(round(duration_s * fs))
    amp = 10 ** ((level_db - full_scale_db) / 20)
    audio = (amp * np.sin(2 * np.pi * 1000.0 * np.arange(n) / fs)).astype(np.float32)
    src = [{"kind": "calibrator", "class": "none", "laeq_db": level_db}]
    labels = _labels(seed, duration_s, fs, full_scale_db, 7.5, 1.2, None, src, [], audio, 0, {}, {})
    return Scene(audio=audio, fs=fs, labels=labels, sources=src)


def _labels(seed, duration_s, fs, full_scale_db, lane, h_mic, ground_q, sources, zone, audio, clipped, overrides,
            draws) -> dict:
    return {"v": VERSION, "family": FAMILY, "generator": "simulators.holdout_scenes", "seed": int(seed), "fs": fs,
            "duration_s": duration_s, "distance_m": round(lane, 3), "mic_height_m": round(h_mic, 3),
            "ground_q": None if ground_q is None else round(ground_q, 3), "full_scale_db": full_scale_db,
            "zone_siren_active": zone, "sources": sources, "peak_fs": round(float(np.max(np.abs(audio))), 5)
            if audio.size else 0.0, "clipped_samples": int(clipped),
            "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}, "draws": draws}


def generate(seed: int, duration_s: float = 60.0, fs: int = 48_000, *, full_scale_db: float = 120.0,
             calibration_tone_db: float | None = None, **overrides) -> Scene:
    """One scene, deterministic per (seed, arguments). Overrides: keys of RANGES (value, (lo, hi) or options)."""
    if not (duration_s > 0 and np.isfinite(duration_s)):
        raise ValueError(f"duration_s must be positive, got {duration_s!r}")
    if int(fs) != fs or fs < 8000:
        raise ValueError(f"fs must be an integer >= 8000, got {fs!r}")
    if not np.isfinite(full_scale_db):
        raise ValueError("full_scale_db must be finite")
    fs = int(fs)
    d = Draws(int(seed), overrides)
    if calibration_tone_db is not None:
        return _calibration(int(seed), duration_s, fs, float(full_scale_db), float(calibration_tone_db))
    b = Builder(int(seed), duration_s, fs, float(full_scale_db), d)
    tex = {k: d("scene", k) for k in ("road_tilt_db_oct", "road_band_dev_db", "road_low_boost_db", "road_mod_db",
                                      "road_mod_s", "distant_grains_per_min")}
    b.texture("road_roar", textures.road_roar, d("scene", "road_db"), tex)
    if d("scene", "distant_db") > 0:
        b.texture("distant_traffic", textures.distant_traffic, d("scene", "distant_db"), tex)
    if d("scene", "wind"):
        b.texture("wind", textures.wind, d("scene", "wind_db"), {"wind_corner_hz": d("scene", "wind_corner_hz")})
    if d("scene", "rain"):
        b.texture("rain", textures.rain, d("scene", "rain_db"), {"rain_drops_per_s": d("scene", "rain_drops_per_s")})
    if d("scene", "idle_engine"):
        b.idle_engine()
    zone = b.civil_siren() if d("scene", "civil_siren") else []
    # traffic: every vehicle draws its own time; a vehicle in a platoon follows the one before it closely
    fleet = [(f"{kind}#{i}", kind) for kind in ("exhaust_car", "exhaust_moto", "legal_car", "moto_legal", "bus",
                                                "truck") for i in range(d.count(f"n_{kind}", duration_s))]
    prev = None
    for name, kind in fleet:
        p = vehicle_params(d, name, kind)
        t_cpa = p["t_frac"] * duration_s
        if prev is not None and d(name, "platoon"):
            t_cpa = min(prev + d(name, "platoon_gap_s"), duration_s - 0.5)
        b.vehicle(name, kind, t_cpa, p)
        prev = t_cpa
    for i in range(d.count("n_siren", duration_s)):
        b.siren(f"siren#{i}")
    for i in range(d.count("n_horn", duration_s)):
        b.horn(f"horn#{i}")
    # the ADC: nothing beyond full scale
    clipped_mask = np.abs(b.mix) > 1.0
    audio = np.clip(b.mix, -1.0, 1.0).astype(np.float32)
    cum = np.concatenate([[0], np.cumsum(clipped_mask)])
    for s in b.sources:
        if "t_peak" in s:
            a, z = (max(0, min(b.n, int((s["t_peak"] + dt) * fs))) for dt in (-1.0, 1.0))
            s["overload"] = bool(cum[z] - cum[a] > 0)
    labels = _labels(seed, duration_s, fs, float(full_scale_db), b.lane, b.h_mic, b.ground_q, b.sources, zone,
                     audio, int(clipped_mask.sum()), overrides, d.log)
    return Scene(audio=audio, fs=fs, labels=labels, sources=b.sources)


assert set(COUNTS) <= set(RANGES) and set(QUIET) <= set(RANGES)
