"""Declared ranges of the held-out family and the draw mechanism.

Each drawn value comes from its own uniform number, hashed from (scene seed, part name, key): a part's draws
are independent of every other part's and of the order of drawing, so overriding one value, or adding a
vehicle, never shifts any other draw. ``Draws.log`` keeps every value drawn (part -> key -> value).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Uni:
    """Uniform on [lo, hi]; ``log`` draws uniformly in log(value); ``integer`` rounds down (hi inclusive)."""
    lo: float
    hi: float
    integer: bool = False
    log: bool = False


@dataclass(frozen=True)
class Pick:
    options: tuple


@dataclass(frozen=True)
class Coin:
    p: float


# counts (``n_*``) are per minute when drawn, scaled by the duration; exact when overridden
RANGES: dict[str, Uni | Pick | Coin] = {
    # scene geometry
    "lane_distance_m": Uni(3.0, 15.0),
    "mic_height_m": Uni(1.2, 4.0),
    "ground_reflection": Coin(0.4),
    "ground_q": Uni(0.55, 0.95),
    # traffic counts per minute
    "n_exhaust_car": Uni(0, 4, integer=True),
    "n_exhaust_moto": Uni(0, 3, integer=True),
    "n_legal_car": Uni(1, 6, integer=True),
    "n_moto_legal": Uni(0, 2, integer=True),
    "n_bus": Uni(0, 2, integer=True),
    "n_truck": Uni(0, 2, integer=True),
    "n_siren": Uni(0, 2, integer=True),
    "n_horn": Uni(0, 3, integer=True),
    "platoon": Coin(0.35),
    "platoon_gap_s": Uni(0.5, 3.0),
    # background textures (LAeq at the microphone, dB)
    "road_db": Uni(44.0, 72.0),
    "road_tilt_db_oct": Uni(-4.0, 2.0),
    "road_band_dev_db": Uni(0.0, 5.0),
    "road_low_boost_db": Uni(0.0, 16.0),
    "road_mod_db": Uni(0.5, 4.0),
    "road_mod_s": Uni(1.5, 10.0),
    "distant_db": Uni(38.0, 64.0),
    "distant_grains_per_min": Uni(6.0, 40.0),
    "idle_engine": Coin(0.25),
    "idle_db": Uni(48.0, 68.0),
    "idle_rpm": Uni(600.0, 1000.0),
    "idle_cylinders": Pick((3, 4, 6)),
    "wind": Coin(0.3),
    "wind_db": Uni(45.0, 72.0),
    "wind_corner_hz": Uni(40.0, 180.0),
    "rain": Coin(0.25),
    "rain_db": Uni(45.0, 68.0),
    "rain_drops_per_s": Uni(150.0, 2500.0, log=True),
    "civil_siren": Coin(0.12),
    "civil_db": Uni(55.0, 80.0),
    # vehicles (each vehicle draws its own)
    "exhaust_db": Uni(80.0, 116.0),
    "legal_car_db": Uni(64.0, 79.0),
    "moto_legal_db": Uni(70.0, 82.0),
    "bus_db": Uni(76.0, 87.0),
    "truck_db": Uni(78.0, 89.0),
    "speed_kmh": Uni(15.0, 80.0),
    "car_cylinders": Pick((3, 4, 5, 6, 8)),
    "moto_cylinders": Pick((1, 2, 3, 4)),
    "uneven_firing": Coin(0.4),
    "half_order_db": Uni(-30.0, -3.0),
    "harmonic_db": Uni(-6.0, 18.0),
    "legal_harmonic_db": Uni(-14.0, 0.0),
    "harmonic_slope_db_oct": Uni(-9.0, -2.0),
    "jitter_db": Uni(1.0, 7.0),
    "jitter_s": Uni(0.05, 0.8, log=True),
    "pipe_length_m": Uni(0.6, 3.5),
    "resonance_db": Uni(3.0, 15.0),
    "resonance_q": Uni(2.0, 8.0),
    "pulse_sharpness": Uni(1.0, 8.0),
    "bb_centre_hz": Uni(250.0, 2500.0, log=True),
    "rpm_story": Pick(("cruise", "accelerate", "gears", "rev", "overrun")),
    "rpm_base": Uni(1400.0, 5500.0),
    "rpm_rise": Uni(1.2, 2.4),
    "rpm_offset_s": Uni(-3.0, 3.0),
    "pop_per_s": Uni(0.0, 35.0),
    "pop_db": Uni(-8.0, 14.0),
    "rear_directivity": Uni(0.0, 0.7),
    "src_height_m": Uni(0.2, 0.7),
    # sirens
    "siren_pattern": Pick(("two_tone", "hilo", "wail", "yelp")),
    "siren_mode": Pick(("passing", "far")),
    "siren_db": Uni(96.0, 120.0),
    "siren_far_m": Uni(60.0, 400.0),
    "siren_table": Uni(0, 4, integer=True),
    "siren_detune": Uni(0.96, 1.04),
    "siren_period_s": Uni(0.8, 1.6),
    "siren_harmonics_db_oct": Uni(-12.0, -3.0),
    # horns
    "horn_kind": Pick(("two_tone", "single", "air")),
    "horn_db": Uni(86.0, 112.0),
    "horn_f_hz": Uni(280.0, 520.0),
    "air_horn_f_hz": Uni(140.0, 330.0),
    "horn_ratio": Uni(1.1, 1.4),
    "horn_six_fifths": Coin(0.3),
    "horn_beeps": Uni(1, 3, integer=True),
    "horn_beep_s": Uni(0.12, 1.5),
    "horn_moving": Coin(0.6),
    "t_frac": Uni(0.05, 0.95),
}

COUNTS = [k for k in RANGES if k.startswith("n_")]

# what ``quiet()`` removes: no traffic, no textures but a 20 dB road floor
QUIET: dict[str, object] = {**{k: 0 for k in COUNTS}, "platoon": False, "road_db": 20.0, "road_mod_db": 0.5,
                            "distant_db": 0.0, "idle_engine": False, "wind": False, "rain": False,
                            "civil_siren": False}


def quiet(**adds: object) -> dict[str, object]:
    """Overrides leaving only what the caller adds back, e.g. ``quiet(n_exhaust_car=1)``."""
    return {**QUIET, **adds}


def _check(key: str, val: object) -> None:
    spec = RANGES.get(key)
    if spec is None:
        raise ValueError(f"unknown holdout-scene override {key!r}")
    if isinstance(spec, Pick):
        opts = val if isinstance(val, list) else [val]
        bad = [o for o in opts if o not in spec.options]
        if bad or not opts:
            raise ValueError(f"{key}: {bad or opts} not among {list(spec.options)}")
    elif isinstance(spec, Coin):
        if not isinstance(val, (bool, np.bool_)):
            raise ValueError(f"{key}: expected true/false, got {val!r}")
    else:
        vals = list(val) if isinstance(val, (tuple, list)) else [val]
        if isinstance(val, list) or len(vals) not in (1, 2):
            raise ValueError(f"{key}: expected a number or a (lo, hi) pair, got {val!r}")
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ValueError(f"{key}: expected a finite number, got {v!r}")
        if key.startswith("n_") and (len(vals) != 1 or vals[0] < 0 or int(vals[0]) != vals[0]):
            raise ValueError(f"{key}: a count override is one non-negative integer, got {val!r}")


def validate(overrides: dict[str, object]) -> None:
    for key, val in overrides.items():
        _check(key, val)


def uniform(seed: int, part: str, key: str) -> float:
    ss = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, zlib.crc32(part.encode()),
                                 zlib.crc32(key.encode())])
    return float(ss.generate_state(2, np.uint64)[0] >> np.uint64(11)) / float(1 << 53)


def rng_for(seed: int, part: str) -> np.random.Generator:
    """The signal generator of one part (noise samples, phases), independent of every draw."""
    return np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, zlib.crc32(part.encode()), 0x51])


class Draws:
    def __init__(self, seed: int, overrides: dict[str, object]) -> None:
        validate(overrides)
        self.seed, self.over = int(seed), dict(overrides)
        self.log: dict[str, dict[str, object]] = {}

    def __call__(self, part: str, key: str):
        spec, u = RANGES[key], uniform(self.seed, part, key)
        val = self.over.get(key)
        if isinstance(spec, Pick):
            opts = val if isinstance(val, list) else ([val] if val is not None else list(spec.options))
            out: object = opts[min(int(u * len(opts)), len(opts) - 1)]
        elif isinstance(spec, Coin):
            out = bool(val) if val is not None else u < spec.p
        else:
            lo, hi = (spec.lo, spec.hi) if val is None else (tuple(val) if isinstance(val, tuple) else (val, val))
            if spec.integer:
                out = int(lo + min(int(u * (hi - lo + 1)), int(hi - lo)))
            elif spec.log and lo > 0 and val is None:
                out = float(lo * (hi / lo) ** u)
            else:
                out = float(lo + u * (hi - lo))
        self.log.setdefault(part, {})[key] = out
        return out

    def count(self, key: str, duration_s: float) -> int:
        """A count: exact if overridden, otherwise the per-minute draw scaled by the duration (stochastic
        rounding with a second hashed number)."""
        if key in self.over and not isinstance(self.over[key], tuple):
            n = int(self.over[key])  # type: ignore[arg-type]
            self.log.setdefault("scene", {})[key] = n
            return n
        per_min = self("scene", key)
        x = per_min * duration_s / 60.0
        return int(np.floor(x + uniform(self.seed, "scene", key + "#round")))
