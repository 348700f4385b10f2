"""Declared ranges of the kerbside family and the per-key draws (docs/noise-scenes.md, "Kerbside family").

Every random choice of a scene is one entry of ``RANGES``. A draw takes one uniform number hashed from
(seed, part, key) with ``numpy.random.SeedSequence``, so overriding one value or adding a source never shifts
another draw. Sample-level grain (noise samples, pulse-to-pulse variation) comes from ``Draws.rng(part)``.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Uni:
    lo: float
    hi: float
    meaning: str
    integer: bool = False
    log: bool = False


@dataclass(frozen=True)
class Pick:
    options: tuple
    meaning: str
    weights: tuple | None = None


@dataclass(frozen=True)
class Coin:
    p: float
    meaning: str


R = {
    # street and microphone
    "lane_distance_m": Uni(3, 15, "microphone to lane centre, horizontal, m (one lane per scene)"),
    "mic_height_m": Uni(1.5, 6, "microphone height above the road (kerb pole to lamp post), m"),
    "mic_setback_m": Uni(0.3, 4, "microphone to the facade behind it, m"),
    "street_width_m": Uni(12, 40, "facade to facade, m (at least lane + setback + 3 m)"),
    "open_side": Coin(0.25, "no facade across the street (square, park, river): three arrivals, not four"),
    "facade_r": Uni(0.55, 0.95, "facade pressure reflection factor at low frequency"),
    "facade_hf_hz": Uni(800, 8000, "corner above which facade reflections lose half their amplitude, Hz",
                        log=True),
    "ground_q": Uni(0.7, 0.98, "road-surface pressure reflection factor"),
    "mems_response": Coin(0.9, "MEMS response applied (else a flat measurement microphone)"),
    "mems_hp_hz": Uni(30, 80, "MEMS high-pass corner (vent), Hz"),
    "mems_peak_db": Uni(2, 6, "MEMS Helmholtz resonance gain, dB"),
    "mems_peak_hz": Uni(10000, 16000, "MEMS resonance frequency, Hz"),
    "self_noise_db": Uni(26, 36, "microphone self-noise, LAeq, dB"),
    # traffic (per minute; an override is an exact count)
    "n_exhaust_car": Uni(0, 3, "straight-pipe cars per minute", integer=True),
    "n_exhaust_moto": Uni(0, 2, "straight-pipe motorcycles per minute", integer=True),
    "n_legal_car": Uni(2, 10, "legal cars per minute", integer=True),
    "n_moto_legal": Uni(0, 2, "motorcycles with legal silencers per minute", integer=True),
    "n_scooter": Uni(0, 2, "two-stroke scooters per minute", integer=True),
    "n_ev": Uni(0, 3, "electric cars per minute", integer=True),
    "n_bus": Uni(0, 1.5, "buses per minute", integer=True),
    "n_truck": Uni(0, 1.5, "trucks per minute", integer=True),
    "n_tram": Uni(0, 1, "trams or trolleybuses per minute", integer=True),
    "n_music_car": Uni(0, 1, "cars playing bass-heavy music per minute", integer=True),
    "n_siren": Uni(0, 1.5, "emergency sirens per minute", integer=True),
    "n_horn": Uni(0, 3, "horn events per minute", integer=True),
    "n_event": Uni(0, 4, "stationary distractors per minute", integer=True),
    "platoon": Coin(0.35, "per vehicle: it follows the vehicle listed before it"),
    "platoon_gap_s": Uni(0.4, 2.5, "its gap behind that vehicle, s"),
    "t_frac": Uni(0.05, 0.95, "time of closest approach (or event start) as a fraction of the duration"),
    "direction": Pick((-1, 1), "direction of travel"),
    "speed_mps": Uni(5, 25, "cruising speed, m/s (bus, truck, tram x 0.6)"),
    "story": Pick(("cruise", "gears", "blips", "overrun", "launch"), "throttle story",
                  (0.25, 0.25, 0.15, 0.15, 0.2)),
    "story_offset_s": Uni(-3, 3, "story centre relative to the closest approach, s"),
    "stop_x_m": Uni(-30, -4, "launch: where it waits at the light, m before the microphone"),
    "idle_s": Uni(1, 6, "launch: idling before the light turns green, s"),
    "accel_mps2": Uni(1.5, 5, "launch: acceleration, m/s^2 (motorcycles x 1.4)"),
    # level truth, LAFmax at 7.5 m (dB)
    "exhaust_db": Uni(80, 112, "straight pipe, when not near the limit"),
    "near_limit": Coin(0.5, "the straight pipe's level is drawn near the 95 dB limit instead"),
    "near_limit_db": Uni(90, 100, "that level"),
    "legal_car_db": Uni(64, 80, "legal car"),
    "moto_legal_db": Uni(70, 84, "legal motorcycle"),
    "scooter_db": Uni(70, 84, "two-stroke scooter"),
    "ev_db": Uni(58, 74, "electric car"),
    "bus_db": Uni(76, 88, "bus"),
    "truck_db": Uni(78, 90, "truck"),
    "engine_brake": Coin(0.35, "a truck uses its compression-release engine brake"),
    "tram_db": Uni(72, 90, "tram or trolleybus"),
    "music_db": Uni(70, 88, "car with bass-heavy music"),
    # engines
    "car_cylinders": Pick((3, 4, 5, 6, 8), "car cylinders", (0.15, 0.4, 0.1, 0.2, 0.15)),
    "moto_layout": Pick(("single", "parallel_twin", "v_twin", "triple", "inline_four"), "motorcycle engine"),
    "v_twin_deg": Pick((45, 52, 90), "V-twin bank angle (firing 360 + angle, 360 - angle)"),
    "idle_rpm": Uni(650, 1100, "idle rpm (motorcycles x 1.4)"),
    "car_rpm": Uni(1800, 4500, "car base rpm under load"),
    "moto_rpm": Uni(6000, 12000, "motorcycle top rpm (base x 0.5-0.7 of it)"),
    "heavy_rpm": Uni(700, 1900, "bus or truck diesel rpm"),
    "stroke2_rpm": Uni(6000, 9500, "two-stroke rpm (scooter, leaf blower)"),
    "rpm_rise": Uni(1.2, 2.2, "top rpm / base rpm of a pull"),
    "gear_drop": Uni(0.62, 0.8, "rpm ratio after an upshift"),
    "rpm_rate": Uni(900, 4000, "rpm per second under full throttle (motorcycles x 2.5)"),
    "pulse_ms": Uni(0.4, 3.0, "blow-down pulse rise time, ms"),
    "pulse_var": Uni(0.05, 0.6, "cycle-to-cycle pulse shape variation (mix of a short and a long pulse)"),
    "pulse_jitter": Uni(0.02, 0.25, "cycle-to-cycle pulse amplitude variation (std, relative)"),
    "misfire_p": Uni(0, 0.015, "straight pipes: probability that a firing misfires (a backfire pop may follow)"),
    "pipe_len_m": Uni(0.5, 3, "exhaust pipe length (waveguide round trip 2L/c)"),
    "gas_c_mps": Uni(420, 600, "speed of sound in the exhaust gas, m/s"),
    "end_reflect": Uni(0.4, 0.9, "straight pipe: open-end reflection magnitude at low frequency"),
    "end_hf_hz": Uni(1000, 4000, "open-end reflection low-pass corner, Hz"),
    "muffler_hz": Uni(150, 500, "legal silencer low-pass corner, Hz"),
    "muffler_reflect": Uni(0.1, 0.35, "legal silencer: remaining open-end reflection"),
    "turbulence_db": Uni(-24, -6, "pulse-synchronous flow noise relative to the pulses, dB"),
    "pop_per_s": Uni(0, 25, "overrun (throttle shut) pops per second, straight pipes"),
    "pop_db": Uni(-6, 10, "pop peak relative to a firing pulse peak, dB"),
    "tyre_peak_hz": Uni(600, 1300, "tyre/road noise peak, Hz"),
    "tyre_db": Uni(-22, -6, "straight pipes: tyre noise relative to the exhaust, dB"),
    "legal_engine_db": Uni(-18, 0, "legal vehicles: exhaust relative to tyre noise, dB"),
    "ev_whine_hz": Uni(80, 200, "electric motor whine per m/s of speed, Hz"),
    "src_height_m": Uni(0.25, 0.7, "exhaust height, m (bus, truck, tram + 0.8)"),
    # sirens
    "siren_pattern": Pick(("two_tone", "wail", "yelp", "hilo", "rumbler", "wail_yelp"), "siren pattern"),
    "siren_row": Uni(0, 3, "row of the pattern's frequency table", integer=True),
    "siren_detune": Uni(0.95, 1.05, "frequency scale of that row"),
    "siren_period_s": Uni(0.7, 1.5, "cycle period before the pattern's factor, s"),
    "siren_drive": Uni(1, 8, "loudspeaker drive (soft clipping: odd harmonics)"),
    "siren_mode": Pick(("passing", "far"), "on the lane, or stationary far away"),
    "siren_db": Uni(92, 118, "passing siren LAFmax at 7.5 m, dB"),
    "siren_far_db": Uni(58, 88, "far siren LAFmax at the microphone, dB"),
    "siren_far_m": Uni(60, 500, "far siren distance, m"),
    "civil_siren": Coin(0.12, "a civil-defence siren far away, known to the hub"),
    "civil_db": Uni(55, 82, "its LAFmax at the microphone, dB"),
    "civil_m": Uni(400, 2000, "its distance, m"),
    # horns
    "horn_kind": Pick(("two_tone", "single", "air", "moto", "clipped"), "horn", (0.35, 0.2, 0.15, 0.1, 0.2)),
    "horn_db": Uni(86, 112, "horn LAFmax at 7.5 m, dB"),
    "horn_f_hz": Uni(300, 520, "car horn (lower) tone, Hz"),
    "horn_ratio": Uni(1.1, 1.4, "two-tone horn ratio"),
    "air_horn_f_hz": Uni(150, 330, "air horn lowest reed, Hz"),
    "moto_horn_f_hz": Uni(380, 620, "motorcycle horn tone, Hz"),
    "horn_drive": Uni(1.5, 10, "clipped horn: overdrive before hard clipping"),
    "horn_beeps": Uni(1, 4, "beeps", integer=True),
    "horn_beep_s": Uni(0.1, 1.5, "beep length, s"),
    "horn_speed_mps": Uni(0, 12, "speed of the honking vehicle, m/s"),
    # moving distractors
    "squeal_hz": Uni(1500, 8000, "tram wheel squeal tone, Hz"),
    "squeal": Coin(0.6, "the tram squeals (curve, points)"),
    "bpm": Uni(85, 140, "music tempo, beats per minute"),
    # stationary distractors (LAFmax at the microphone)
    "event_kind": Pick(("jackhammer", "leaf_blower", "dog_bark", "shout", "air_brake", "impacts"),
                       "stationary distractor"),
    "event_db": Uni(60, 92, "its LAFmax at the microphone, dB"),
    "event_dist_m": Uni(4, 30, "its distance, m"),
    "event_s": Uni(1, 10, "its length, s"),
    # background textures (LAeq at the microphone)
    "distant_db": Uni(40, 64, "distant traffic (many far vehicles), LAeq, dB"),
    "distant_vehicles": Uni(12, 60, "far vehicles per minute", integer=True),
    "distant_lp_hz": Uni(250, 2500, "far traffic low-pass corner, Hz", log=True),
    "distant_hum_db": Uni(0, 15, "far engine hum (30-120 Hz) re the roar, dB"),
    "wind": Coin(0.3, "wind on the microphone"),
    "wind_db": Uni(45, 80, "wind, LAeq, dB"),
    "wind_corner_hz": Uni(10, 80, "wind spectrum corner, Hz"),
    "wind_bursts_per_min": Uni(0, 20, "windscreen-defeating gusts per minute (low-frequency bursts)"),
    "rain": Coin(0.25, "rain"),
    "rain_db": Uni(45, 70, "rain, LAeq, dB"),
    "rain_drops_per_s": Uni(200, 5000, "drop impacts per second", log=True),
}
RANGES: dict[str, Uni | Pick | Coin] = R


def _crc(s: str) -> int:
    return zlib.crc32(s.encode())


class Draws:
    """Per-key draws with overrides; every value drawn is logged in ``log`` (part -> key -> value)."""

    def __init__(self, seed: int, overrides: dict) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed {seed!r}: need a non-negative integer")
        self.seed = int(seed)
        self.overrides = {k: _check(k, v) for k, v in overrides.items()}
        self.log: dict[str, dict] = {}

    def u(self, part: str, key: str) -> float:
        ss = np.random.SeedSequence([self.seed & 0xFFFFFFFF, self.seed >> 32, _crc(part), _crc(key)])
        return float(ss.generate_state(1, np.uint64)[0]) / 2.0**64

    def rng(self, part: str) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self.seed >> 32, _crc(part), 7])

    def __call__(self, part: str, key: str):
        spec, u = RANGES[key], self.u(part, key)
        ov = self.overrides.get(key)
        if isinstance(ov, list):
            val = ov[min(int(u * len(ov)), len(ov) - 1)]
        elif isinstance(ov, tuple):
            lo, hi = ov
            val = lo + u * (hi - lo)
            val = int(math.floor(val + 0.5)) if isinstance(spec, Uni) and spec.integer else float(val)
        elif ov is not None:
            val = ov
        elif isinstance(spec, Coin):
            val = u < spec.p
        elif isinstance(spec, Pick):
            w = np.cumsum(spec.weights or [1.0] * len(spec.options))
            val = spec.options[min(int(np.searchsorted(w / w[-1], u, side="right")), len(spec.options) - 1)]
        elif spec.log:
            val = spec.lo * (spec.hi / spec.lo) ** u
        else:
            val = spec.lo + u * (spec.hi - spec.lo)
            if spec.integer and not key.startswith("n_"):
                val = min(int(spec.lo + u * (spec.hi - spec.lo + 1)), int(spec.hi))
        if isinstance(val, (np.floating, float)):
            val = round(float(val), 6)
        self.log.setdefault(part, {})[key] = val
        return val

    def count(self, key: str, duration_s: float) -> int:
        """Counts: an override is exact; a drawn rate per minute is scaled and rounded stochastically."""
        ov = self.overrides.get(key)
        if ov is not None and not isinstance(ov, (list, tuple)):
            self.log.setdefault("scene", {})[key] = ov
            return int(ov)
        rate = self("scene", key)
        x = float(rate) * duration_s / 60.0
        return int(math.floor(x + self.u("scene", key + "#round")))


def _check(key: str, v):
    if key not in RANGES:
        raise ValueError(f"unknown kerbside-scene override {key!r}")
    spec = RANGES[key]
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    if isinstance(v, tuple) and (len(v) != 2 or not isinstance(spec, Uni)):
        raise ValueError(f"{key}: a (lo, hi) pair is only for numeric ranges")
    if isinstance(v, list) and not v:
        raise ValueError(f"{key}: empty list of options")
    for x in vals:
        if isinstance(spec, Coin) and not isinstance(x, (bool, np.bool_)):
            raise ValueError(f"{key}: need True or False, got {x!r}")
        if isinstance(spec, Pick) and x not in spec.options:
            raise ValueError(f"{key}: {x!r} is not one of {spec.options}")
        if isinstance(spec, Uni):
            if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not math.isfinite(x):
                raise ValueError(f"{key}: need a number, got {x!r}")
            if key.startswith("n_") and not isinstance(v, tuple) and (x < 0 or int(x) != x):
                raise ValueError(f"{key}: a count must be a non-negative integer, got {x!r}")
    if isinstance(v, tuple):
        return (float(v[0]), float(v[1]))
    if isinstance(spec, Uni) and not isinstance(v, list) and key.startswith("n_"):
        return int(v)
    return v
