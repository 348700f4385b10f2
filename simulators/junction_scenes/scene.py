"""The junction scene: a signalised approach seen from a microphone pole at the kerb (docs/noise-scenes.md,
"Junction family")."""

from __future__ import annotations

import math
import zlib

import numpy as np

from simulators.junction_scenes import ambient, meter
from simulators.junction_scenes.propagate import Air, Screen
from simulators.junction_scenes.ranges import COUNTS, Draws, check_override
from simulators.junction_scenes.sources import (
    civil_source,
    horn_source,
    siren_source,
    stationary_source,
    vehicle_sources,
)
from simulators.junction_scenes.traffic import Light
from simulators.noise_scene import Scene

FAMILY = "junction"
FAMILY_SALT = 0x4A4E4354
QUIET = {**{k: 0 for k in COUNTS}, "traffic_texture": False, "wind": False, "rain": False, "civil_siren": False,
         "aps": False, "music": False, "construction": False, "barrier": False, "windscreen_db": 0.0,
         "self_noise_db": 15.0, "green_s": 40.0, "red_s": 15.0, "cycle_phase": 0.2, "arrive_frac": (0.3, 0.7)}


def quiet(**adds) -> dict:
    """Overrides that leave only what the caller adds back, over the preamp's 15 dB(A) self-noise, with the
    light green from -11 s to 29 s and vehicles passing the pole in the middle 40 % of the scene."""
    for k, v in adds.items():
        check_override(k, v)
    return {**QUIET, **adds}


def scene_seeds(count: int, seed: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence([int(seed), FAMILY_SALT]).generate_state(int(count))]


def scenes(count: int, seed: int, **kwargs):
    for s in scene_seeds(count, seed):
        yield generate(s, **kwargs)


def _check(seed, duration_s, fs, full_scale_db, calibration_tone_db, overrides) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed: a non-negative integer, got {seed!r}")
    for name, val, lo, hi in (("duration_s", duration_s, 1.0, 3600.0), ("full_scale_db", full_scale_db, 60.0, 180.0)):
        if isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val) or not lo <= val <= hi:
            raise ValueError(f"{name}: expected {lo:g}-{hi:g}, got {val!r}")
    if isinstance(fs, bool) or not isinstance(fs, int) or not 44100 <= fs <= 192000 or fs % 10:
        raise ValueError(f"fs: an integer sample rate 44100-192000 divisible by 10, got {fs!r}")
    if calibration_tone_db is not None and (isinstance(calibration_tone_db, bool) or not isinstance(
            calibration_tone_db, int | float) or not 0.0 < calibration_tone_db <= full_scale_db):
        raise ValueError(f"calibration_tone_db: expected 0-{full_scale_db:g}, got {calibration_tone_db!r}")
    for k, v in overrides.items():
        check_override(k, v)


def _labels(seed, duration_s, fs, full_scale_db, overrides) -> dict:
    return {"v": 1, "family": FAMILY, "generator": __name__, "seed": int(seed), "fs": fs,
            "duration_s": float(duration_s), "full_scale_db": float(full_scale_db), "zone_siren_active": [],
            "overrides": {k: (list(v) if isinstance(v, tuple | list) else v) for k, v in overrides.items()}}


def calibrator(seed, duration_s, fs, full_scale_db, level_db) -> Scene:
    n = int(round(duration_s * fs))
    amp = 10 ** ((level_db - full_scale_db) / 20)
    x = (amp * np.sin(2 * np.pi * 1000.0 * np.arange(n) / fs)).astype(np.float32)
    src = {"kind": "calibrator", "class": "none", "laeq_db": float(level_db), "f_hz": 1000.0}
    labels = {**_labels(seed, duration_s, fs, full_scale_db, {}), "distance_m": 7.5, "mic_height_m": 1.5,
              "sources": [src], "peak_fs": float(amp), "clipped_samples": 0, "draws": {}}
    return Scene(audio=x, fs=fs, labels=labels, sources=labels["sources"])


def generate(seed: int, duration_s: float = 60.0, fs: int = 48000, *, full_scale_db: float = 120.0,
             calibration_tone_db: float | None = None, **overrides) -> Scene:
    _check(seed, duration_s, fs, full_scale_db, calibration_tone_db, overrides)
    if calibration_tone_db is not None:
        return calibrator(seed, duration_s, fs, full_scale_db, float(calibration_tone_db))
    d = Draws(seed, overrides)
    n = int(round(duration_s * fs))
    dur = n / fs
    sc = "scene"
    lane, mic_h = d(sc, "lane_distance_m"), d(sc, "mic_height_m")
    ground = d(sc, "ground")
    sigma = d(sc, "asphalt_sigma_kpa") if ground == "asphalt" else d(sc, "grass_sigma_kpa")
    air = Air(d(sc, "temperature_c"), d(sc, "humidity_pct"))
    light = Light(d(sc, "green_s"), d(sc, "red_s"), d(sc, "cycle_phase"))
    greens = [(a, b) for a, b in light.greens(-30.0, dur + 30.0) if b > -30 and a < dur + 30]
    screen = None
    if d(sc, "barrier"):
        y = d(sc, "barrier_frac") * lane
        bx, blen, t_on = d(sc, "barrier_x_m"), d(sc, "barrier_len_m"), d(sc, "barrier_on_frac") * dur
        screen = Screen(y, bx - blen / 2, bx + blen / 2, d(sc, "barrier_h_m"), t_on, t_on + d(sc, "barrier_stay_s"))
    ctx = {"d": d, "seed": int(seed), "fs": fs, "n": n, "duration": dur, "lane": lane, "mic_h": mic_h, "air": air,
           "sigma": sigma, "screen": screen, "light": light, "greens": greens, "fsdb": float(full_scale_db),
           "src_h": d(sc, "src_height_m"), "stop_x": d(sc, "stop_x_m"), "gap": d(sc, "queue_gap_m"),
           "headway": d(sc, "headway_s")}
    counts = {}
    for key in COUNTS:
        rate = d(sc, key)
        counts[key] = int(rate) if key in overrides else int(math.floor(rate * dur / 60.0 + d.uniform(sc, key + "#r")))
    mix = np.zeros(n)
    sources: list[dict] = []
    vehicle_sources(ctx, counts, mix, sources)
    for i in range(counts["n_horn"]):
        horn_source(ctx, f"horn#{i}", mix, sources)
    for i in range(counts["n_siren"]):
        siren_source(ctx, f"siren#{i}", mix, sources)
    for i in range(counts["n_bell"]):
        stationary_source(ctx, f"bell#{i}", "bell", mix, sources)
    for flag in ("aps", "music", "construction"):
        if d(sc, flag):
            stationary_source(ctx, flag, flag, mix, sources)
    zone = []
    if d(sc, "civil_siren"):
        zone = civil_source(ctx, "civil", mix, sources)
    textures(ctx, mix, sources)
    mix = ambient.windscreen(mix, fs, d(sc, "windscreen_db"))
    rng = np.random.default_rng([int(seed), zlib.crc32(b"self_noise"), FAMILY_SALT])
    noise = ambient.self_noise(n, fs, rng)
    sn_db = d(sc, "self_noise_db")
    mix += noise * 10 ** ((sn_db - meter.laeq(noise, fs, full_scale_db)) / 20)
    sources.append({"kind": "mic_self_noise", "class": "none", "laeq_db": round(sn_db, 2)})
    peak = float(np.max(np.abs(mix))) if n else 0.0
    clipped = np.abs(mix) >= 1.0
    audio = np.round(np.clip(mix, -1.0, 1.0) * 2 ** 23) / 2 ** 23  # 24-bit ADC
    cum = np.concatenate([[0], np.cumsum(clipped)])
    for s in sources:
        if "t_peak" in s:
            a, b = max(int((s["t_peak"] - 1) * fs), 0), min(int((s["t_peak"] + 1) * fs), n)
            s["overload"] = bool(cum[b] - cum[a] > 0)
    labels = {**_labels(seed, duration_s, fs, full_scale_db, overrides), "distance_m": round(lane, 3),
              "mic_height_m": round(mic_h, 3), "ground": ground, "flow_resistivity_kpa": round(sigma, 1),
              "air": {"temperature_c": round(air.temperature_c, 2), "humidity_pct": round(air.humidity_pct, 2)},
              "light": {"green_s": round(light.green_s, 2), "red_s": round(light.red_s, 2),
                        "greens": [[round(a, 2), round(b, 2)] for a, b in greens if b > 0 and a < dur]},
              "screen": None if screen is None else {"y_m": round(screen.y, 2), "x_m": [round(screen.x0, 2),
                        round(screen.x1, 2)], "h_m": round(screen.h, 2), "on": [round(screen.t_on, 2),
                        round(screen.t_off, 2)]},
              "zone_siren_active": zone, "sources": sources, "peak_fs": round(peak, 6),
              "clipped_samples": int(clipped.sum()), "draws": d.log}
    return Scene(audio=audio.astype(np.float32), fs=fs, labels=labels, sources=sources)


def textures(ctx: dict, mix: np.ndarray, sources: list) -> None:
    d, fs, n, sc = ctx["d"], ctx["fs"], ctx["n"], "scene"

    def add(kind: str, x: np.ndarray, db: float, extra: dict) -> None:
        mix[:] += x * 10 ** ((db - meter.laeq(x, fs, ctx["fsdb"])) / 20)
        sources.append({"kind": kind, "class": "none", "laeq_db": round(db, 2), **extra})

    def rng(name: str) -> np.random.Generator:
        return np.random.default_rng([ctx["seed"], zlib.crc32(name.encode()), FAMILY_SALT])

    if d(sc, "traffic_texture"):
        x = ambient.traffic(n, fs, d(sc, "bg_tilt_db_oct"), d(sc, "bg_low_db"), d(sc, "bg_low_hz"),
                            d(sc, "bg_band_dev_db"), d(sc, "bg_cycle_db"), ctx["greens"], rng("traffic"))
        add("traffic_texture", x, d(sc, "bg_db"), {})
    if d(sc, "wind"):
        x = ambient.wind(n, fs, d(sc, "wind_corner_hz"), d(sc, "wind_gust_hz"), d(sc, "wind_gust_depth"), rng("wind"))
        add("wind", x, d(sc, "wind_db"), {})
    if d(sc, "rain"):
        add("rain", ambient.rain(n, fs, d(sc, "rain_rate"), d(sc, "rain_hz"), rng("rain")), d(sc, "rain_db"), {})

