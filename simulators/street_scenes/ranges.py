"""The one table of declared random ranges for the independent street-scene family.

Every random *choice* the generator makes (counts, levels, distances, speeds, engine and siren
parameters, probabilities) is drawn through :class:`Draws` from an entry of ``RANGES``; nothing else
in the package picks a number at random except the sample-level noise (the grain of a noise texture,
the exact jitter of one firing pulse), which is drawn from per-source generators seeded by the scene
seed. ``docs/noise-scenes.md`` ("independent family") lists the same table.

Units: dB values are A-weighted SPL re 20 uPa (LAFmax at 7.5 m for vehicles, sirens and horns; LAeq for
background textures; LAFmax at the microphone for intermittent events); ``*_db_rel`` are level ratios
between parts of one source; Hz, m, s, km/h as named.

Overrides: ``generate(seed, **overrides)`` accepts any key of ``RANGES`` with either one value (the draw
becomes that value) or a ``(lo, hi)`` pair for a numeric range (drawn uniformly inside it) or a subset
list for a choice. Unknown keys raise ``ValueError``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class U:
    """Uniform on [lo, hi] (integers inclusive when ``integer``)."""

    lo: float
    hi: float
    doc: str
    integer: bool = False


@dataclass(frozen=True)
class P:
    """Bernoulli with probability ``p``."""

    p: float
    doc: str


@dataclass(frozen=True)
class C:
    """Choice among ``options`` with ``weights`` (equal when omitted)."""

    options: tuple[Any, ...]
    doc: str
    weights: tuple[float, ...] | None = None


RANGES: dict[str, U | P | C] = {
    # --- geometry
    "lane_distance_m": U(3.0, 15.0, "microphone to lane centre, horizontal (one lane per scene)"),
    "mic_height_m": U(1.2, 4.0, "microphone height above the road"),
    "ground_reflection": P(0.5, "hard-ground image source present"),
    "ground_q": U(0.6, 0.95, "pressure reflection coefficient of the road surface"),
    "speed_kmh": U(20.0, 90.0, "vehicle speed (sign: direction, drawn separately)"),
    # --- background textures (LAeq at the microphone)
    "road_roar_db": U(42.0, 66.0, "tyre/road roar texture, LAeq"),
    "road_tilt": U(0.6, 2.2, "roar power spectrum ~ f^-tilt (1/f-like)"),
    "road_low_boost_db": U(0.0, 14.0, "extra roar energy below road_low_hz"),
    "road_low_hz": U(80.0, 500.0, "corner of the low-frequency boost"),
    "road_ripple_db": U(1.0, 6.0, "random smooth spectral ripple of the roar (recorded-texture colour)"),
    "road_sway_db": U(0.5, 4.0, "slow (0.02-0.3 Hz) level fluctuation of the roar, std"),
    "distant_passbys_per_min": U(10.0, 120.0, "distant vehicles passing on other streets"),
    "distant_db": U(38.0, 62.0, "distant traffic superposition, LAeq"),
    "distant_dist_m": U(40.0, 400.0, "closest distance of each distant pass-by"),
    "idle_engine": P(0.3, "an idling vehicle nearby (low-frequency engine orders)"),
    "idle_db": U(45.0, 64.0, "idling engine, LAeq"),
    "idle_rpm": U(600.0, 950.0, "idling engine speed"),
    "wind": P(0.35, "wind buffeting on the microphone"),
    "wind_db": U(45.0, 80.0, "wind buffeting, LAeq"),
    "wind_corner_hz": U(8.0, 60.0, "wind spectrum corner (power ~ f^-2 above it)"),
    "wind_gust_hz": U(0.05, 0.6, "gust (slow AM) bandwidth"),
    "rain": P(0.3, "rain"),
    "rain_db": U(45.0, 72.0, "rain, LAeq"),
    "rain_drops_per_s": U(300.0, 6000.0, "drop impacts per second"),
    # --- intermittent events (LAFmax at the microphone)
    "n_events": U(0, 6, "intermittent non-vehicle events per minute", integer=True),
    "event_kind": C(("footsteps", "door_slam", "birds", "babble"), "kind of each event"),
    "event_db": U(50.0, 84.0, "event LAFmax at the microphone"),
    "event_dist_m": U(2.0, 30.0, "event distance from the microphone"),
    "steps": U(4, 11, "footsteps in one walk", integer=True),
    "step_hz": U(1.7, 2.1, "walking cadence"),
    "slam_hz": U(40.0, 120.0, "door-slam thump modes (three draws)"),
    "chirps": U(3, 12, "chirps in one bird phrase", integer=True),
    "chirp_hz": U(2000.0, 7000.0, "bird chirp centre frequency (one draw per chirp)"),
    "chirp_s": U(0.03, 0.2, "bird chirp length (one draw per chirp)"),
    "talkers": U(2, 4, "talkers in a babble", integer=True),
    "talker_f0_hz": U(100.0, 250.0, "a talker's voice pitch"),
    "babble_s": U(2.0, 6.0, "babble length"),
    "syllable_hz": U(3.0, 6.0, "syllable rate (AM) of a talker"),
    "vowel_s": U(0.08, 0.25, "time on one vowel"),
    # --- vehicles: counts per minute (scaled by duration)
    "n_legal_car": U(1, 10, "legal cars", integer=True),
    "n_exhaust_car": U(0, 2, "straight-pipe cars", integer=True),
    "n_exhaust_moto": U(0, 2, "straight-pipe motorcycles", integer=True),
    "n_moto_legal": U(0, 2, "motorcycles with legal silencers", integer=True),
    "n_heavy": U(0, 3, "buses and trucks", integer=True),
    "close_pair": P(0.5, "a loud exhaust gets a companion vehicle passing close behind it"),
    "close_partner": C(("legal_car", "heavy", "moto_legal", "exhaust_car"), "the companion's kind"),
    "close_gap_s": U(0.3, 2.5, "time between the pair's closest approaches"),
    # --- vehicle levels, LAFmax at 7.5 m (same ground, same microphone height)
    "legal_car_db": U(64.0, 80.0, "legal car"),
    "exhaust_db": U(84.0, 115.0, "straight-pipe car or motorcycle"),
    "moto_legal_db": U(72.0, 86.0, "legal motorcycle"),
    "heavy_db": U(76.0, 90.0, "bus or truck"),
    # --- vehicle sound make-up
    "tyre_peak_hz": U(550.0, 1400.0, "tyre/road noise spectral peak"),
    "legal_engine_db_rel": U(-28.0, -10.0, "engine orders of a legal car relative to its tyre noise"),
    "exhaust_tyre_db_rel": U(-24.0, -8.0, "tyre noise of an exhaust vehicle relative to its exhaust"),
    "car_cylinders": C((4, 5, 6, 8), "cylinders of a car engine", (0.45, 0.1, 0.25, 0.2)),
    "firing_unevenness": U(0.0, 0.06, "firing-interval irregularity (fraction of a cycle; V8 burble)"),
    "car_rpm_lo": U(1400.0, 3000.0, "lowest rpm of a car's profile"),
    "car_rpm_hi": U(4000.0, 7200.0, "highest rpm of a car's profile"),
    "moto_cylinders": C((1, 2), "motorcycle cylinders"),
    "moto_twin_angle": C((270, 315, 360, 450), "twin: crank degrees between the two firings"),
    "moto_rpm_lo": U(2500.0, 4500.0, "lowest rpm of a motorcycle profile"),
    "moto_rpm_hi": U(6000.0, 10500.0, "highest rpm of a motorcycle profile"),
    "heavy_rpm": U(700.0, 2100.0, "bus/truck diesel rpm"),
    "heavy_kind": C(("bus", "truck"), "heavy vehicle kind"),
    "rpm_profile": C(("gears", "blips", "overrun", "cruise"), "throttle/rpm story during the pass-by"),
    "rpm_phase": U(0.0, 1.0, "where in its first cycle the rpm story starts (relative to the pass-by)"),
    "blip_every_s": U(0.8, 3.0, "time between rev blips"),
    "rpm_rate": U(800.0, 3000.0, "rpm change per second under load"),
    "gear_drop": U(0.6, 0.78, "rpm ratio after an upshift"),
    "pipe_len_m": U(0.6, 2.5, "straight pipe length (resonance c_gas/2L)"),
    "gas_c_mps": U(400.0, 560.0, "speed of sound in the hot exhaust gas"),
    "pipe_reflect": U(0.3, 0.85, "open-end reflection magnitude"),
    "pipe_hf_hz": U(800.0, 3000.0, "high-frequency loss of pipe and tailpipe (2nd-order low-pass)"),
    "pulse_ms": U(0.2, 1.5, "width of one exhaust blow-down pulse"),
    "turbulence_db_rel": U(-20.0, -6.0, "pulse-synchronous turbulent roar relative to the pulses"),
    "crackle_per_s": U(2.0, 40.0, "pops per second on overrun (throttle off)"),
    "crackle_db_rel": U(-6.0, 14.0, "pop peak relative to the firing-pulse peak"),
    "muffler_hz": U(120.0, 400.0, "legal silencer low-pass corner"),
    # --- sirens
    "n_siren": U(0, 2, "sirens per scene", integer=True),
    "siren_pattern": C(("two_tone", "hilo", "wail", "yelp"), "siren pattern"),
    "siren_maker": C(("electronic", "mechanical"), "generator (mechanical only for wail)", (0.75, 0.25)),
    "siren_mode": C(("passing", "stationary_far"), "a passing vehicle, or a siren far away"),
    "siren_db": U(90.0, 112.0, "passing siren LAFmax at 7.5 m"),
    "siren_far_db": U(100.0, 125.0, "far siren: its level at 7.5 m"),
    "siren_far_dist_m": U(80.0, 1200.0, "far siren distance"),
    "siren_duration_s": U(8.0, 40.0, "far siren sounding time"),
    "siren_f_lo": U(400.0, 800.0, "lowest siren frequency"),
    "siren_sweep_ratio": U(1.6, 3.2, "wail/yelp top/bottom frequency ratio"),
    "two_tone_ratio": U(1.25, 1.40, "two-tone upper/lower ratio"),
    "two_tone_period_s": U(0.9, 3.0, "two-tone full cycle"),
    "hilo_ratio": U(1.35, 1.65, "hi-lo upper/lower ratio"),
    "hilo_period_s": U(0.4, 1.2, "hi-lo full cycle"),
    "wail_period_s": U(2.5, 7.0, "wail sweep period"),
    "yelp_hz": U(2.5, 5.0, "yelp sweep rate"),
    "siren_drive": U(1.0, 6.0, "electronic siren waveform drive (soft clipping, odd harmonics)"),
    "hub_zone": P(0.5, "the hub knows about a far siren (retained zone state)"),
    # --- horns
    "n_horn": U(0, 3, "horn events", integer=True),
    "horn_kind": C(("two_tone", "single", "air"), "car two-tone, car single, truck air horn", (0.5, 0.3, 0.2)),
    "horn_f_hz": U(300.0, 520.0, "car horn (lower) tone"),
    "horn_ratio": U(1.1, 1.4, "two-tone horn upper/lower ratio"),
    "horn_six_fifths": P(0.3, "two-tone horn tuned to exactly 6:5"),
    "air_horn_f_hz": U(150.0, 350.0, "air horn lowest tone"),
    "air_horn_tones": U(1, 3, "air horn tones (chord)", integer=True),
    "horn_db": U(88.0, 112.0, "horn LAFmax at 7.5 m"),
    "horn_beeps": U(1, 4, "beeps in one horn event", integer=True),
    "horn_beep_s": U(0.15, 1.6, "one beep"),
    "horn_speed_kmh": U(0.0, 40.0, "speed of the honking vehicle"),
    # --- placement
    "t_frac": U(0.0, 1.0, "where in the scene (between 2 s from either end) a source peaks or starts"),
    "direction": C((-1, 1), "direction of travel"),
    "horn_offset_s": U(-0.5, 0.5, "horn onset relative to the honking vehicle's closest approach"),
}

# Counts in RANGES are per minute of scene; these keys are scaled by duration/60 (then rounded).
PER_MINUTE = ("n_events", "n_legal_car", "n_exhaust_car", "n_exhaust_moto", "n_moto_legal", "n_heavy",
              "n_siren", "n_horn")

# Overrides that silence everything but the named vehicles (used for isolated pass-bys and calibration).
QUIET: dict[str, Any] = {
    "road_roar_db": 20.0, "distant_db": 15.0, "idle_engine": False, "wind": False, "rain": False,
    "n_events": 0, "n_legal_car": 0, "n_exhaust_car": 0, "n_exhaust_moto": 0, "n_moto_legal": 0,
    "n_heavy": 0, "n_siren": 0, "n_horn": 0, "close_pair": False,
}


def quiet(**adds: Any) -> dict[str, Any]:
    """``QUIET`` with ``adds`` on top: ``generate(seed, **quiet(n_exhaust_car=1))`` is one isolated car."""
    return {**QUIET, **adds}


class Draws:
    """Draw from ``RANGES`` (with overrides), recording every value drawn under its key."""

    def __init__(self, seed: int, name: str, overrides: dict[str, Any] | None = None,
                 registry: dict[str, dict[str, Any]] | None = None) -> None:
        key = [seed & 0xFFFFFFFF, zlib.crc32(name.encode())]
        self.rng = np.random.default_rng(key)
        self.noise = np.random.default_rng(key + [1])  # sample-level grain only (noise samples, pulse jitter)
        self.overrides = overrides or {}
        self.log: dict[str, Any] = {}
        if registry is not None:
            registry[name] = self.log

    def __call__(self, key: str) -> Any:
        """One draw for ``key``. Exactly one uniform number is consumed per call, overridden or not, so an
        override never shifts the draws that follow it."""
        spec = RANGES[key]
        ov = self.overrides.get(key)
        r = float(self.rng.random())
        if isinstance(spec, U):
            if ov is None:
                lo, hi = spec.lo, spec.hi
            elif isinstance(ov, (tuple, list)):
                lo, hi = float(ov[0]), float(ov[-1])
            else:
                lo = hi = float(ov)
            v: Any = int(min(int(lo) + int(r * (int(hi) - int(lo) + 1)), int(hi))) if spec.integer \
                else float(lo + (hi - lo) * r)
        elif isinstance(spec, P):
            v = bool(ov) if ov is not None else bool(r < spec.p)
        else:
            opts, w = spec.options, spec.weights
            if ov is not None:
                opts = tuple(ov) if isinstance(ov, (tuple, list)) else (ov,)
                w = None
            cum = np.cumsum(np.ones(len(opts)) if w is None else np.asarray(w, dtype=float))
            v = opts[min(int(np.searchsorted(cum / cum[-1], r, side="right")), len(opts) - 1)]
        self.log[key] = v
        return v


def check_overrides(overrides: dict[str, Any]) -> None:
    for key, val in overrides.items():
        if key not in RANGES:
            raise ValueError(f"unknown street-scene override {key!r}; known: {', '.join(sorted(RANGES))}")
        spec = RANGES[key]
        if isinstance(spec, C):
            vals = val if isinstance(val, (tuple, list)) else (val,)
            bad = [v for v in vals if v not in spec.options]
            if bad or not vals:
                raise ValueError(f"override {key}={val!r}: expected one or more of {spec.options}")
        elif isinstance(spec, U):
            vals = val if isinstance(val, (tuple, list)) else (val,)
            if len(vals) not in (1, 2) or not all(np.isfinite(float(v)) for v in vals):
                raise ValueError(f"override {key}={val!r}: expected a number or a (lo, hi) pair")
