"""Declared ranges of the boulevard family and the per-(seed, part, key) drawing of values from them.

Every random choice a scene makes is one row of ``RANGES``. A value is drawn from its own uniform number, hashed
(BLAKE2b) from the scene seed, the part (``street``, ``exhaust_car#0``, ...) and the key, so adding a source or
overriding one value never shifts another draw. Overrides replace a draw by one value, a ``(lo, hi)`` pair or a
list of options; they are validated against the row."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A number between ``lo`` and ``hi`` (uniform, or log-uniform with ``log``; integers with ``integer``)."""

    lo: float
    hi: float
    log: bool = False
    integer: bool = False

    def pick(self, u: float, lo: float | None = None, hi: float | None = None) -> float | int:
        a, b = (self.lo if lo is None else lo), (self.hi if hi is None else hi)
        if self.integer:
            return int(min(b, math.floor(a + u * (b - a + 1))))
        if self.log and a > 0:
            return float(a * (b / a) ** u)
        return float(a + u * (b - a))


@dataclass(frozen=True)
class OneOf:
    """One of ``options`` (with optional weights)."""

    options: tuple
    weights: tuple | None = None

    def pick(self, u: float, options: tuple | None = None) -> object:
        opts = self.options if options is None else options
        w = self.weights if (options is None and self.weights) else (1.0,) * len(opts)
        acc, total = 0.0, sum(w)
        for o, wi in zip(opts, w, strict=True):
            acc += wi / total
            if u < acc:
                return o
        return opts[-1]


@dataclass(frozen=True)
class Chance:
    """True with probability ``p``."""

    p: float

    def pick(self, u: float) -> bool:
        return bool(u < self.p)


S, P, C = Span, OneOf, Chance
RANGES: dict[str, Span | OneOf | Chance] = {
    # avenue and microphone
    "lane_distance_m": S(3.0, 15.0), "mic_height_m": S(2.0, 6.0), "lanes_each_way": S(2, 6, integer=True),
    "lane_width_m": S(2.8, 3.6), "median_m": S(1.0, 8.0), "mic_kind": P(("mems", "analog"), (0.6, 0.4)),
    "mems_hp_hz": S(60.0, 200.0, log=True), "mems_port_db": S(3.0, 8.0), "mems_port_hz": S(12000.0, 18000.0),
    "capsule_lp_hz": S(12000.0, 20000.0), "self_noise_db": S(22.0, 34.0),
    "air_db_per_100m": S(1.0, 8.0), "canopy_db": S(0.0, 9.0), "canopy_rate_hz": S(0.05, 1.0, log=True),
    "tail_s": S(0.2, 0.8), "tail_db": S(-26.0, -10.0),
    # traffic (rates per minute unless overridden: then exact counts)
    "n_exhaust_car": S(0.0, 3.0), "n_exhaust_moto": S(0.0, 2.0), "n_legal_car": S(2.0, 9.0),
    "n_moto_legal": S(0.0, 2.5), "n_heavy": S(0.0, 2.5), "n_scooter": S(0.0, 1.5), "n_tram": S(0.0, 1.0),
    "n_siren": S(0.0, 0.8), "n_horn": S(0.0, 2.5), "n_distractor": S(0.0, 6.0),
    "t_frac": S(0.03, 0.97), "direction": P((1, -1)), "lane_pick": S(0.0, 1.0),
    "speed_mps": S(8.0, 25.0), "overtake": C(0.25), "overtake_gap_s": S(0.2, 2.0),
    "filter_speed_mps": S(2.0, 8.0), "platoon": C(0.3), "platoon_gap_s": S(0.4, 2.5),
    # levels: LAFmax at 7.5 m
    "exhaust_db": S(82.0, 115.0), "exhaust_core": C(0.8), "exhaust_core_db": S(86.0, 108.0),
    "legal_car_db": S(60.0, 84.0), "moto_legal_db": S(70.0, 90.0), "heavy_db": S(76.0, 90.0),
    "scooter_db": S(68.0, 86.0), "tram_db": S(72.0, 90.0), "horn_db": S(84.0, 112.0), "siren_db": S(92.0, 118.0),
    # engines: spectral-modelling synthesis
    "car_cylinders": P((3, 4, 5, 6, 8), (0.15, 0.4, 0.1, 0.2, 0.15)),
    "moto_layout": P(("single", "twin360", "twin270", "vtwin", "triple", "four", "stroke2"),
                     (0.15, 0.15, 0.15, 0.2, 0.1, 0.15, 0.1)),
    "heavy_cylinders": P((4, 6, 8), (0.3, 0.5, 0.2)), "vtwin_deg": P((45, 52, 60, 90)),
    "firing_spread": S(0.0, 0.08), "cyl_gain_spread": S(0.0, 0.35), "crossplane": C(0.5),
    "story": P(("cruise", "gears", "blips", "overrun", "wheelie"), (0.25, 0.3, 0.15, 0.2, 0.1)),
    "story_offset_s": S(-3.0, 3.0), "car_rpm": S(1500.0, 4500.0), "moto_rpm": S(3500.0, 9000.0),
    "heavy_rpm": S(700.0, 1900.0), "scooter_rpm": S(5500.0, 9500.0), "rpm_rise": S(1.2, 2.3),
    "gear_drop": S(0.6, 0.8), "rpm_rate": S(600.0, 3500.0), "blip_s": S(0.6, 2.0),
    "bumps": S(2, 4, integer=True), "bump_hz": S(80.0, 3000.0, log=True), "bump_oct": S(0.3, 1.6),
    "bump_db": S(4.0, 28.0), "envelope_tilt_db_oct": S(-5.0, 1.0), "legal_lp_hz": S(400.0, 6000.0, log=True),
    "harmonic_db": S(-10.0, 20.0), "legal_harmonic_db": S(-16.0, 6.0), "max_order_hz": S(1500.0, 5500.0),
    "legal_orders": S(3, 12, integer=True), "rasp_depth": S(0.3, 0.95), "rasp_sharpness": S(1.0, 8.0),
    "tyre_hz": S(600.0, 1400.0), "tyre_db": S(-24.0, -6.0), "legal_tyre_db": S(-16.0, 4.0),
    "pop_per_s": S(0.0, 30.0), "pop_db": S(-6.0, 12.0), "throttle_db": S(3.0, 10.0),
    "src_height_m": S(0.25, 0.7),
    # horns
    "horn_kind": P(("two_tone", "single", "air", "moto"), (0.4, 0.25, 0.2, 0.15)),
    "horn_f_hz": S(300.0, 520.0), "horn_ratio": S(1.1, 1.4), "air_horn_f_hz": S(140.0, 340.0),
    "air_reeds": S(2, 4, integer=True), "moto_horn_f_hz": S(380.0, 650.0), "horn_bell_hz": S(1500.0, 3500.0),
    "horn_square": S(0.3, 1.0), "horn_beeps": S(1, 4, integer=True), "horn_beep_s": S(0.1, 1.4),
    "horn_offset_s": S(-2.0, 1.5), "horn_on_vehicle": C(0.7),
    # sirens
    "siren_pattern": P(("two_tone", "wail", "yelp", "hilo", "rumbler", "martinhorn")),
    "siren_row": S(0, 3, integer=True), "siren_detune": S(0.95, 1.05), "siren_period_s": S(0.6, 1.6),
    "siren_harm_db_oct": S(-14.0, -3.0), "siren_start": P(("before", "mid"), (0.7, 0.3)),
    "civil_siren": C(0.08), "civil_db": S(55.0, 85.0), "civil_m": S(800.0, 3000.0),
    # trams
    "squeal": C(0.6), "squeal_hz": S(1500.0, 7000.0, log=True), "tram_bell": C(0.5),
    "bell_hz": S(600.0, 1400.0),
    # distractors (LAFmax at the microphone)
    "distractor": P(("birds", "dog", "voices", "music", "sweeper", "bus_hiss")),
    "distractor_db": S(55.0, 86.0), "distractor_m": S(3.0, 30.0), "distractor_s": S(1.0, 8.0),
    # background textures and weather (LAeq at the microphone)
    "texture_layers": S(1, 3, integer=True), "texture": P(("rumble", "cafe", "fountain", "leaves")),
    "texture_db": S(30.0, 66.0), "texture_channels": S(10, 20, integer=True),
    "texture_tilt_db_oct": S(-6.0, 1.5), "texture_mod_hz": S(0.05, 12.0, log=True),
    "texture_mod_db": S(0.5, 8.0), "rumble_boost_db": S(0.0, 18.0),
    "wind": C(0.3), "wind_db": S(42.0, 76.0), "wind_corner_hz": S(10.0, 90.0, log=True),
    "rain": C(0.25), "rain_db": S(44.0, 70.0), "rain_drops_per_s": S(150.0, 5000.0, log=True),
}

COUNTS = tuple(k for k in RANGES if k.startswith("n_"))


def unit(seed: int, part: str, key: str) -> float:
    """A uniform number in [0, 1) from (seed, part, key) alone."""
    h = hashlib.blake2b(f"{seed}|{part}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def check_overrides(overrides: dict) -> dict:
    """Validate overrides (ValueError on an unknown key or a value outside its row); returns them normalised."""
    out = {}
    for key, val in overrides.items():
        if key not in RANGES:
            raise ValueError(f"unknown boulevard-scene override {key!r}")
        spec = RANGES[key]
        if key in COUNTS:
            if isinstance(val, bool) or not isinstance(val, int | float) or val != int(val) or not 0 <= val <= 60:
                raise ValueError(f"{key}: an exact count 0-60 expected, got {val!r}")
            out[key] = int(val)
        elif isinstance(spec, Chance):
            if not isinstance(val, bool):
                raise ValueError(f"{key}: True or False expected, got {val!r}")
            out[key] = val
        elif isinstance(spec, OneOf):
            opts = tuple(val) if isinstance(val, list) else (val,)
            if not opts or not all(any(o == x and type(o) is type(x) for x in spec.options) for o in opts):
                raise ValueError(f"{key}: options are {spec.options}, got {val!r}")
            out[key] = list(opts) if isinstance(val, list) else val
        else:
            pair = tuple(val) if isinstance(val, tuple | list) else (val, val)
            if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int | float) for v in pair):
                raise ValueError(f"{key}: a number or a (lo, hi) pair expected, got {val!r}")
            lo, hi = float(pair[0]), float(pair[1])
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or lo < spec.lo or hi > spec.hi:
                raise ValueError(f"{key}: {val!r} is outside {spec.lo:g} - {spec.hi:g}")
            if spec.integer and (lo != int(lo) or hi != int(hi)):
                raise ValueError(f"{key}: integers expected, got {val!r}")
            out[key] = (lo, hi) if isinstance(val, tuple | list) else val
    return out


class Draws:
    """Draws values for one scene and records them (part -> key -> value) for the labels."""

    def __init__(self, seed: int, overrides: dict) -> None:
        self.seed, self.over, self.log = seed, overrides, {}

    def __call__(self, part: str, key: str) -> object:
        spec, u = RANGES[key], unit(self.seed, part, key)
        o = self.over.get(key)
        if key in COUNTS and o is not None:
            return o
        if o is None:
            val = spec.pick(u)
        elif isinstance(spec, Span):
            lo, hi = (o, o) if not isinstance(o, tuple) else o
            val = spec.pick(u, lo, hi) if lo != hi else (int(lo) if spec.integer else float(lo))
        elif isinstance(spec, OneOf):
            val = spec.pick(u, tuple(o)) if isinstance(o, list) else o
        else:
            val = o
        self.log.setdefault(part, {})[key] = val
        return val

    def rng_seed(self, part: str) -> int:
        """A seed for the sample-level grain (noise samples, jitter) of one part."""
        return int(unit(self.seed, part, "~grain") * 2**63)
