"""Declared ranges of the junction family (every random choice is one row here) and the per-key draw.

Every value is drawn from its own uniform number, hashed from (seed, part, key) by ``numpy.random.SeedSequence``,
so overriding one value or adding a source never shifts another draw."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

SALT = 0x4A554E43  # "JUNC"


@dataclass(frozen=True)
class Uni:
    lo: float
    hi: float
    log: bool = False
    integer: bool = False
    meaning: str = ""
    core: tuple | None = None  # (lo, hi, share): that share of the draws falls in [lo, hi]


@dataclass(frozen=True)
class Pick:
    options: tuple
    weights: tuple | None = None
    meaning: str = ""


@dataclass(frozen=True)
class Coin:
    p: float
    meaning: str = ""


def _u(lo, hi, m, **kw):
    return Uni(float(lo), float(hi), meaning=m, **kw)


RANGES: dict[str, Uni | Pick | Coin] = {
    # the junction and the microphone
    "lane_distance_m": _u(3, 15, "microphone pole to the near lane's centre, horizontal, m"),
    "mic_height_m": _u(1.5, 4.5, "capsule height on the pole, m"),
    "src_height_m": _u(0.3, 0.5, "engine / tailpipe point-source height, m"),
    "temperature_c": _u(-5, 35, "air temperature for ISO 9613-1 absorption, deg C"),
    "humidity_pct": _u(20, 95, "relative humidity for ISO 9613-1 absorption, %"),
    "ground": Pick(("asphalt", "grass_verge"), (0.75, 0.25), "ground between lane and pole"),
    "asphalt_sigma_kpa": _u(5000, 100000, "asphalt flow resistivity (Delany-Bazley), kPa s/m^2", log=True),
    "grass_sigma_kpa": _u(100, 400, "grass verge flow resistivity (Delany-Bazley), kPa s/m^2", log=True),
    "green_s": _u(12, 40, "green phase of the approach, s"),
    "red_s": _u(15, 50, "red phase of the approach, s"),
    "cycle_phase": _u(0, 1, "where in its cycle the light is at t = 0"),
    "stop_x_m": _u(-30, 2, "stop line along the street relative to the pole, m (negative: before it)"),
    "queue_gap_m": _u(5.5, 9, "front-to-front spacing of queued vehicles, m"),
    "headway_s": _u(1.2, 2.6, "discharge headway of the queue at green, s"),
    "barrier": Coin(0.3, "a stopped bus or parked van screens the lane for a while"),
    "barrier_h_m": _u(2, 3.3, "screen height (van 2-2.6, bus 3-3.3), m"),
    "barrier_frac": _u(0.25, 0.75, "screen's lateral position as a fraction of the lane distance"),
    "barrier_x_m": _u(-15, 15, "screen centre along the street, m"),
    "barrier_len_m": _u(5, 13, "screen length, m"),
    "barrier_on_frac": _u(0, 1, "when the screen arrives, fraction of the duration"),
    "barrier_stay_s": _u(5, 40, "how long it stays, s"),
    "windscreen_db": _u(0, 2, "foam windscreen loss above 8 kHz (high shelf), dB"),
    "self_noise_db": _u(15, 25, "preamp self-noise, LAeq, dB"),
    # background
    "traffic_texture": Coin(0.97, "urban traffic texture present"),
    "bg_db": _u(40, 70, "traffic texture LAeq, dB"),
    "bg_tilt_db_oct": _u(-6, 3, "tilt of the normalised traffic spectrum about 1 kHz, dB/octave"),
    "bg_low_db": _u(0, 15, "extra texture level below bg_low_hz, dB"),
    "bg_low_hz": _u(150, 500, "corner of that low boost, Hz"),
    "bg_band_dev_db": _u(0, 4, "random deviation per 1/3-octave band, dB std"),
    "bg_cycle_db": _u(0, 6, "texture modulation by the signal cycle (cross street flowing), dB"),
    "wind": Coin(0.25, "wind on the windscreen"),
    "wind_db": _u(45, 78, "wind noise LAeq, dB"),
    "wind_corner_hz": _u(15, 80, "wind noise corner (f^-2 above), Hz"),
    "wind_gust_hz": _u(0.05, 0.8, "gust modulation bandwidth, Hz"),
    "wind_gust_depth": _u(0.3, 1.5, "gust modulation depth (log-amplitude std)"),
    "rain": Coin(0.2, "rain"),
    "rain_db": _u(45, 70, "rain LAeq, dB"),
    "rain_rate": _u(300, 8000, "crackle impulses per second", log=True),
    "rain_hz": _u(1500, 6000, "crackle band centre, Hz", log=True),
    "civil_siren": Coin(0.08, "a distant civil-defence siren (sets zone_siren_active)"),
    "civil_db": _u(55, 85, "its LAFmax at the microphone, dB"),
    "civil_m": _u(500, 3000, "its distance, m"),
    "civil_hz": _u(300, 480, "its top frequency, Hz"),
    "civil_period_s": _u(6, 14, "its rise-and-fall period, s"),
    "aps": Coin(0.5, "an accessible pedestrian signal on the pole"),
    "aps_kind": Pick(("tick", "beep"), None, "its sound"),
    "aps_hz": _u(500, 4000, "its tone / click resonance, Hz", log=True),
    "aps_rate_hz": _u(1, 10, "its repetition rate while pedestrians walk, Hz"),
    "aps_db": _u(55, 80, "its LAFmax at the microphone, dB"),
    "aps_m": _u(1, 6, "its distance, m"),
    "music": Coin(0.2, "a street musician or shop music"),
    "music_db": _u(55, 78, "its LAFmax at the microphone, dB"),
    "music_m": _u(4, 20, "its distance, m"),
    "music_bpm": _u(70, 140, "its tempo, beats per minute"),
    "music_root_hz": _u(80, 220, "its root note, Hz"),
    "construction": Coin(0.15, "construction thumps nearby"),
    "thump_db": _u(65, 90, "thump LAFmax at the microphone, dB"),
    "thump_m": _u(15, 60, "construction distance, m"),
    "thump_per_s": _u(0.2, 3, "thumps per second"),
    "thump_hz": _u(30, 120, "thump body resonance, Hz"),
    # counts per minute (an override is the exact count)
    "n_exhaust_car": _u(0, 3, "straight-pipe cars per minute"),
    "n_exhaust_moto": _u(0, 2, "straight-pipe motorcycles per minute"),
    "n_legal_car": _u(3, 12, "legal cars per minute"),
    "n_moto_legal": _u(0, 2, "legal motorcycles per minute"),
    "n_bus": _u(0, 1.5, "buses per minute"),
    "n_truck": _u(0, 1.5, "trucks per minute"),
    "n_horn": _u(0, 2, "horn events per minute"),
    "n_siren": _u(0, 1.2, "emergency vehicles with sirens per minute"),
    "n_bell": _u(0, 2, "bicycle bells per minute"),
    # a vehicle's traffic story
    "arrive_frac": _u(0, 1, "when it would pass the pole unhindered, fraction of [-3 s, duration + 2 s]"),
    "speed_mps": _u(5, 20, "approach / through speed, m/s"),
    "through_accel_mps2": _u(-1.5, 2.5, "acceleration while passing on green, m/s^2"),
    "brake_mps2": _u(1.5, 4, "braking to the queue, m/s^2"),
    "launch_accel_mps2": _u(1, 3, "pulling away at green, m/s^2"),
    "hard_launch": Coin(0.7, "straight pipes: a hard launch instead"),
    "hard_accel_mps2": _u(3, 7, "hard launch acceleration, m/s^2"),
    "v_max_mps": _u(10, 20, "speed it accelerates to, m/s"),
    "react_s": _u(0.3, 2, "reaction time at green, s"),
    "turn": Coin(0.25, "it turns at the junction (curved path)"),
    "turn_side": Pick(("away", "toward"), None, "turn away from the pole or into the pole's side street"),
    "turn_after_m": _u(3, 25, "turn starts this far past the stop line, m"),
    "turn_radius_m": _u(6, 15, "turn radius, m"),
    # levels, LAFmax at 7.5 m
    "exhaust_db": _u(82, 115, "straight pipe (85 % of draws in 86-108), dB", core=(86.0, 108.0, 0.85)),
    "legal_car_db": _u(60, 84, "legal car, dB"),
    "moto_legal_db": _u(70, 90, "legal motorcycle, dB"),
    "bus_db": _u(76, 90, "bus, dB"),
    "truck_db": _u(78, 90, "truck, dB"),
    # engines
    "car_cylinders": Pick((3, 4, 5, 6, 8), (0.15, 0.4, 0.1, 0.2, 0.15), "car cylinders (even firing)"),
    "moto_layout": Pick(("single", "parallel_twin", "v_twin", "triple", "four", "two_stroke"), None,
                        "motorcycle engine"),
    "twin_angle": Pick((45, 60, 90), None, "V-twin bank angle, deg (firing 360+a, 360-a)"),
    "idle_rpm": _u(600, 1100, "idle rpm (motorcycles x 1.3)"),
    "shift_rpm_hard": _u(3000, 7500, "straight pipes: upshift rpm (motorcycles x 1.6)"),
    "shift_rpm_legal": _u(1800, 3200, "legal: upshift rpm (motorcycles x 1.6, heavy x 0.6)"),
    "gear_step": _u(1.35, 1.75, "speed ratio between successive gears"),
    "v_per_krpm": _u(1.6, 2.6, "first gear: m/s per 1000 rpm (motorcycles x 0.8)"),
    "blips": Uni(0, 4, integer=True, meaning="straight pipes: rev blips while waiting at red"),
    "limiter_s": _u(0, 1.2, "hard launch: time bouncing on the rev limiter, s"),
    "bounce_hz": _u(6, 15, "rev-limiter bounce rate, Hz"),
    "fire_jitter": _u(0, 0.04, "firing-time irregularity, fraction of the firing interval"),
    "misfire_p": _u(0, 0.02, "probability that a firing misfires"),
    "fire_scatter": _u(0.02, 0.6, "straight pipes: per-firing amplitude scatter (log std)"),
    "legal_scatter": _u(0.02, 0.15, "legal: per-firing amplitude scatter (log std)"),
    "n_modes": Uni(3, 8, integer=True, meaning="resonant modes of the exhaust/body bank"),
    "mode_hz": _u(60, 3000, "a mode's frequency, Hz", log=True),
    "pipe_q": _u(6, 60, "straight pipe: a mode's quality factor (light damping)", log=True),
    "damped_q": _u(0.8, 5, "legal: a mode's quality factor (heavy damping)"),
    "mode_db": _u(-12, 0, "a mode's gain, dB"),
    "balance_hz": _u(80, 2500, "centre of the vehicle's spectral balance (mode gain bump), Hz", log=True),
    "balance_oct": _u(0.5, 2.5, "width of that bump, octaves (std)"),
    "rasp_db": _u(-18, 0, "straight pipe: raspy firing-gated broadband re the modes, dB"),
    "rasp_hz": _u(800, 5000, "rasp band centre, Hz", log=True),
    "rasp_decay_ms": _u(1, 8, "rasp burst decay per firing, ms"),
    "pop_per_s": _u(0, 20, "straight pipes: overrun pops per second"),
    "pop_db": _u(0, 14, "pop excitation re a firing, dB"),
    "silencer_hz": _u(250, 3000, "legal: silencer low-pass corner on the excitation, Hz", log=True),
    "hum_hz": _u(40, 200, "legal: intake / mechanical hum mode, Hz"),
    "hum_db": _u(-20, -3, "legal: hum re the modes, dB"),
    "tyre_hz": _u(700, 1300, "tyre/road noise peak, Hz"),
    "tyre_slope": _u(30, 35, "tyre level law, dB per decade of speed"),
    "tyre_legal_db": _u(0, 12, "legal: tyre noise re the engine at 15 m/s, dB"),
    "tyre_exhaust_db": _u(-22, -6, "straight pipes: tyre noise re the engine at 15 m/s, dB"),
    # horns
    "horn_kind": Pick(("two_tone", "single", "air", "scooter"), (0.4, 0.25, 0.15, 0.2), "horn"),
    "horn_f_hz": _u(300, 550, "car horn (lower) tone, Hz"),
    "horn_ratio": _u(1.1, 1.4, "two-tone ratio"),
    "air_horn_f_hz": _u(150, 380, "air horn lowest tone, Hz"),
    "air_horn_tones": Uni(1, 3, integer=True, meaning="air horn reeds (1 : 1.26 : 1.5)"),
    "scooter_horn_hz": _u(500, 900, "scooter horn tone, Hz"),
    "horn_beeps": Uni(1, 6, integer=True, meaning="beeps"),
    "horn_beep_s": _u(0.08, 1.2, "beep length, s"),
    "horn_gap_s": _u(0.08, 0.5, "gap between beeps, s"),
    "horn_db": _u(85, 112, "horn LAFmax at 7.5 m, dB"),
    "horn_formant_hz": _u(1800, 3500, "bell formant, Hz"),
    "horn_slope": _u(0.4, 1.6, "harmonic roll-off exponent (amplitude k^-slope)"),
    "horn_even_db": _u(-12, 0, "even harmonics re odd, dB"),
    "horn_moving": Coin(0.4, "horn on a moving vehicle (else on a queued car)"),
    "horn_speed_mps": _u(2, 12, "speed of the honking vehicle, m/s"),
    "horn_delay_s": _u(0.3, 4, "honk after the light turns green, s"),
    "horn_frac": _u(0, 1, "which green (nearest to this fraction of the duration)"),
    "horn_queue": Uni(0, 4, integer=True, meaning="queue place of the honking car"),
    # sirens
    "siren_pattern": Pick(("wail", "yelp", "hilo", "two_tone", "phaser", "alternating"), None, "siren pattern"),
    "siren_lo_hz": _u(380, 900, "lowest siren frequency, Hz"),
    "siren_span": _u(1.6, 3, "sweep top / bottom (wail, yelp, phaser)"),
    "two_tone_ratio": _u(1.2, 1.4, "upper / lower (two-tone, hi-lo)"),
    "siren_rate": _u(0.7, 1.4, "multiplier of the pattern's base period"),
    "siren_wave": Pick(("tanh", "clip"), None, "square-ish (tanh) or hard-clipped waveform"),
    "siren_drive": _u(1, 12, "waveform drive before the shaping"),
    "speaker_hz": _u(600, 2200, "horn-speaker resonance, Hz"),
    "siren_db": _u(95, 120, "siren LAFmax at 7.5 m, dB"),
    "siren_frac": _u(0, 1, "when the emergency vehicle reaches the stop line, fraction of the duration"),
    "siren_speed_mps": _u(8, 18, "its speed, m/s"),
    "siren_stops": Coin(0.5, "it stops at a red light with the siren on, then passes"),
    "siren_start_s": _u(-20, 2, "siren switched on, s re its stop-line time"),
    "siren_len_s": _u(6, 60, "siren on for, s"),
    # bicycle bells
    "bell_hz": _u(2000, 4500, "bell's lowest partial, Hz"),
    "bell_rings": Uni(1, 3, integer=True, meaning="rings"),
    "bell_db": _u(60, 85, "bell LAFmax at the microphone, dB"),
    "bell_m": _u(2, 10, "bell distance, m"),
    "bell_frac": _u(0, 1, "when, fraction of the duration"),
}

COUNTS = tuple(k for k in RANGES if k.startswith("n_"))
MAX_COUNT = 60


def check_override(key: str, val) -> None:
    spec = RANGES.get(key)
    if spec is None:
        raise ValueError(f"unknown junction-scene override {key!r}")
    if isinstance(spec, Coin):
        if not isinstance(val, bool | np.bool_):
            raise ValueError(f"{key}: expected True or False, got {val!r}")
        return
    if isinstance(spec, Pick):
        opts = list(val) if isinstance(val, list | tuple) else [val]
        if not opts or any(isinstance(o, bool) or o not in spec.options for o in opts):
            raise ValueError(f"{key}: expected one or a list of {spec.options}, got {val!r}")
        return
    if key in COUNTS:
        if isinstance(val, bool) or not isinstance(val, int | np.integer) or not 0 <= val <= MAX_COUNT:
            raise ValueError(f"{key}: an exact count is an integer 0..{MAX_COUNT}, got {val!r}")
        return
    vals = list(val) if isinstance(val, list | tuple) else [val]
    if not vals or (isinstance(val, tuple) and len(val) != 2):
        raise ValueError(f"{key}: expected a number, a (lo, hi) pair or a list of options, got {val!r}")
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or not math.isfinite(v):
            raise ValueError(f"{key}: not a finite number: {v!r}")
        if not spec.lo <= float(v) <= spec.hi:
            raise ValueError(f"{key}: {v!r} outside the declared range {spec.lo:g} - {spec.hi:g}")
        if spec.integer and float(v) != int(v):
            raise ValueError(f"{key}: expected an integer, got {v!r}")
    if isinstance(val, tuple) and val[0] > val[1]:
        raise ValueError(f"{key}: (lo, hi) with lo > hi: {val!r}")


class Draws:
    """One uniform per (seed, part, key); overrides replace or narrow the draw; everything is logged."""

    def __init__(self, seed: int, overrides: dict):
        self.seed = int(seed)
        self.over = overrides
        self.log: dict[str, dict[str, object]] = {}

    def uniform(self, part: str, key: str) -> float:
        ss = np.random.SeedSequence([self.seed, zlib.crc32(part.encode()), zlib.crc32(key.encode()), SALT])
        return float(ss.generate_state(1, np.uint64)[0] >> np.uint64(11)) / float(1 << 53)

    def __call__(self, part: str, key: str):
        spec = RANGES[key]
        u = self.uniform(part, key)
        val = self.over.get(key)
        if isinstance(spec, Coin):
            out = bool(val) if val is not None else bool(u < spec.p)
        elif isinstance(spec, Pick):
            if val is None:
                opts, w = list(spec.options), spec.weights
            else:
                opts = list(val) if isinstance(val, list | tuple) else [val]
                w = None
            cw = np.cumsum(w if w is not None else np.ones(len(opts)))
            out = opts[min(int(np.searchsorted(cw / cw[-1], u, side="right")), len(opts) - 1)]
            out = out.item() if isinstance(out, np.generic) else out
        else:
            if isinstance(val, list):
                out = float(val[min(int(u * len(val)), len(val) - 1)])
            else:
                lo, hi = (float(val[0]), float(val[1])) if isinstance(val, tuple) else (
                    (float(val), float(val)) if val is not None else (spec.lo, spec.hi))
                if spec.core is not None and val is None:
                    c_lo, c_hi, share = spec.core
                    tail = (1 - share) / 2
                    if u < tail:
                        out = lo + (c_lo - lo) * u / tail
                    elif u > 1 - tail:
                        out = c_hi + (hi - c_hi) * (u - 1 + tail) / tail
                    else:
                        out = c_lo + (c_hi - c_lo) * (u - tail) / share
                elif spec.log and lo > 0:
                    out = float(lo * (hi / lo) ** u)
                else:
                    out = lo + (hi - lo) * u
            if spec.integer:
                out = int(math.floor(lo + (hi - lo + 1) * u)) if val is None or isinstance(val, tuple) else int(out)
                out = int(min(max(out, spec.lo), spec.hi))
            out = min(max(out, spec.lo), spec.hi) if key not in COUNTS or val is None else out
        self.log.setdefault(part, {})[key] = out
        return out
