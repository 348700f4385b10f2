"""Assembly of one held-out scene: draws, sources, level truth, mix, ADC and labels."""

from __future__ import annotations

import math

import numpy as np

from . import meter
from .engines import Engine
from .render import Path, reduced_factor, render
from .signals import Horn, Siren
from .spec import Draws, rng_for

VERSION = 1
REF_M = 7.5
VEHICLES = {  # kind -> (class, level key, cylinder key, tyre noise re tonal part, dB)
    "exhaust_car": ("exhaust", "exhaust_db", "car_cylinders", -14.0),
    "exhaust_moto": ("exhaust", "exhaust_db", "moto_cylinders", -16.0),
    "legal_car": ("other", "legal_car_db", "car_cylinders", 6.0),
    "moto_legal": ("other", "moto_legal_db", "moto_cylinders", -3.0),
    "bus": ("other", "bus_db", None, 2.0),
    "truck": ("other", "truck_db", None, 3.0),
}


def vehicle_params(d: Draws, name: str, kind: str) -> dict:
    klass, level_key, cyl_key, tyre_db = VEHICLES[kind]
    loud = klass == "exhaust"
    heavy = kind in ("bus", "truck")
    moto = "moto" in kind
    rpm = d(name, "rpm_base")
    rise = d(name, "rpm_rise")
    story = d(name, "rpm_story")
    if not loud and story in ("rev", "overrun"):
        story = "cruise"  # a legal vehicle keeps its draw in the log but drives calmly
    p = {
        "kind": kind, "class": klass, "level_db": d(name, level_key),
        "speed_mps": d(name, "speed_kmh") / 3.6 * (0.75 if heavy else 1.0),
        "cylinders": 6 if heavy else int(d(name, cyl_key)),
        "uneven": bool(d(name, "uneven_firing")), "half_order_db": d(name, "half_order_db"),
        "harmonic_db": d(name, "harmonic_db" if loud else "legal_harmonic_db"),
        "slope_db_oct": d(name, "harmonic_slope_db_oct"), "jitter_db": d(name, "jitter_db"),
        "jitter_s": d(name, "jitter_s"), "pipe_length_m": d(name, "pipe_length_m"),
        "resonance_db": d(name, "resonance_db") * (1.0 if loud else 0.35), "resonance_q": d(name, "resonance_q"),
        "pulse_sharpness": d(name, "pulse_sharpness"), "bb_centre_hz": d(name, "bb_centre_hz"),
        "rpm_story": story, "rpm": 700 + 0.3 * rpm if heavy else min(rpm * (1.5 if moto else 1.0), 9500.0),
        "rpm_rise": rise if loud else 1 + 0.4 * (rise - 1), "rpm_offset_s": d(name, "rpm_offset_s"),
        "pop_per_s": d(name, "pop_per_s") if loud else 0.0, "pop_db": d(name, "pop_db"),
        "rear_directivity": d(name, "rear_directivity") * (1.0 if loud else 0.4),
        "src_height_m": d(name, "src_height_m") + (0.6 if heavy else 0.0), "tyre_db": tyre_db,
        "t_frac": d(name, "t_frac"),
    }
    return p


class Builder:
    def __init__(self, seed: int, duration_s: float, fs: int, full_scale_db: float, d: Draws) -> None:
        self.seed, self.dur, self.fs, self.fsdb, self.d = seed, duration_s, fs, full_scale_db, d
        self.n = int(round(duration_s * fs))
        self.mix = np.zeros(self.n)
        self.sources: list[dict] = []
        self.lane = d("scene", "lane_distance_m")
        self.h_mic = d("scene", "mic_height_m")
        self.ground_q = d("scene", "ground_q") if d("scene", "ground_reflection") else None
        self.fs_r = fs // reduced_factor(fs)

    def window(self, t_lo: float, t_hi: float) -> tuple[int, int]:
        i0 = max(0, int(t_lo * self.fs))
        i1 = min(self.n, int(math.ceil(t_hi * self.fs)))
        if i1 - i0 < self.fs // 2:  # at least half a second, inside the scene
            i0 = max(0, min(i0, self.n - self.fs // 2))
            i1 = min(self.n, i0 + self.fs // 2)
        return i0, i1

    def point(self, name: str, src, path_mic: Path, path_ref: Path, i0: int, i1: int, level_db: float,
              at_mic: bool, label: dict, trace: bool = False) -> None:
        """Render a source at 7.5 m and at the microphone; scale so the drawn level is the true LAFmax of the
        7.5 m rendering (``at_mic``: of the microphone rendering); label it and add it to the mix."""
        fs, fsdb = self.fs, self.fsdb
        y_ref = render(src, path_ref, i0, i1, fs, self.ground_q)
        y_mic = render(src, path_mic, i0, i1, fs, self.ground_q)
        ya_ref = meter.a_weight(y_ref, fs)
        blk = max(1, fs // 1000)  # levels are kept as 1 ms maxima of the Fast mean square
        lv_ref, _ = meter.block_levels(meter.fast_ms(ya_ref, fs), i0, blk, fsdb)
        ms_mic = meter.fast_ms(meter.a_weight(y_mic, fs), fs)
        lv_mic, b0 = meter.block_levels(ms_mic, i0, blk, fsdb)
        shift = level_db - float((lv_mic if at_mic else lv_ref).max())
        g = 10 ** (shift / 20)
        y_mic *= g
        lv_ref += shift
        lv_mic += shift
        kb = int(np.argmax(lv_mic))
        top = float(lv_mic[kb])
        s0 = max(0, (b0 + kb) * blk - i0)
        k = s0 + int(np.argmax(ms_mic[s0:s0 + blk]))
        loud = np.flatnonzero(lv_mic >= top - 20.0)
        label.update({
            "t_peak": round((i0 + k) / fs, 4), "t_start": round(max(i0, (b0 + loud[0]) * blk) / fs, 4),
            "t_end": round(min(i1 - 1, (b0 + loud[-1] + 1) * blk - 1) / fs, 4),
            "lafmax_7p5_db": round(float(lv_ref.max()), 3), "lafmax_mic_db": round(top, 3),
            "sel_7p5_db": round(meter.sel(y_ref, fs, fsdb, ya_ref) + shift, 3),
            "peak_fs_alone": round(float(np.max(np.abs(y_mic))), 5),
        })
        if trace:  # 10 Hz LAFmax per 100 ms frame of the scene
            per = max(1, (fs // 10) // blk)
            f0 = -(-b0 // per)
            seg = lv_mic[f0 * per - b0:]
            m = seg.size // per
            label["laf_trace"] = [round(float(v), 2) for v in seg[: m * per].reshape(m, per).max(axis=1)]
            label["laf_trace_t0"] = round(f0 * per * blk / fs, 4)
        self.mix[i0:i1] += y_mic
        self.sources.append(label)

    # -- sources ----------------------------------------------------------------------------------------------
    def vehicle(self, name: str, kind: str, t_cpa: float, p: dict) -> None:
        v = p["speed_mps"]
        half = float(np.clip(5.0 * max(self.lane, REF_M) / v + 1.5, 4.0, 10.0))
        i0, i1 = self.window(t_cpa - half, t_cpa + half)
        span = (i0 / self.fs, i1 / self.fs)
        src = Engine(p, t_cpa + p["rpm_offset_s"], span, self.fs, self.fs_r, rng_for(self.seed, name))
        paths = [Path(lane, p["src_height_m"], self.h_mic, t_cpa, v) for lane in (self.lane, REF_M)]
        label = {"kind": kind, "class": p["class"], "name": name, "source_distance_m": round(self.lane, 3),
                 "speed_mps": round(v, 3), "t_cpa": round(t_cpa, 3), "cylinders": p["cylinders"],
                 "uneven_firing": p["uneven"], "rpm_story": p["rpm_story"], "rpm": round(p["rpm"], 1),
                 "f0_hz": round(p["rpm"] / 120.0 * p["cylinders"], 2), "harmonic_db": round(p["harmonic_db"], 2),
                 "pops": len(src.events())}
        self.point(name, src, paths[0], paths[1], i0, i1, p["level_db"], False, label)

    def siren(self, name: str) -> None:
        d = self.d
        pattern, mode = d(name, "siren_pattern"), d(name, "siren_mode")
        p = {"pattern": pattern, "siren_table": d(name, "siren_table"), "siren_detune": d(name, "siren_detune"),
             "siren_period_s": d(name, "siren_period_s"), "siren_harmonics_db_oct": d(name, "siren_harmonics_db_oct")}
        t_c = d(name, "t_frac") * self.dur
        v = d(name, "speed_kmh") / 3.6 if mode == "passing" else 0.0
        i0, i1 = self.window(t_c - 12.0, t_c + 12.0)
        src = Siren(p, i0 / self.fs, (i0 / self.fs, i1 / self.fs), self.fs_r, rng_for(self.seed, name))
        dist = self.lane if mode == "passing" else d(name, "siren_far_m")
        h = 1.6
        label = {"kind": f"siren_{pattern}", "class": "siren", "name": name, "pattern": pattern, "mode": mode,
                 "source_distance_m": round(dist, 2), "speed_mps": round(v, 3),
                 "f_hz": [round(src.f_lo, 1), round(src.f_hi, 1)], "cycle_s": round(src.period, 3)}
        self.point(name, src, Path(dist, h, self.h_mic, t_c, v), Path(REF_M, h, self.h_mic, t_c, v), i0, i1,
                   d(name, "siren_db") - (20 * math.log10(dist / REF_M) if mode == "far" else 0.0), mode == "far",
                   label, trace=True)

    def civil_siren(self) -> list[list[float]]:
        d, name = self.d, "civil_siren"
        t_on = d(name, "t_frac") * self.dur * 0.5
        p = {"pattern": "civil", "siren_table": d(name, "siren_table"), "siren_detune": d(name, "siren_detune"),
             "siren_period_s": d(name, "siren_period_s"), "siren_harmonics_db_oct": d(name, "siren_harmonics_db_oct")}
        i0, i1 = self.window(t_on, self.dur)
        src = Siren(p, i0 / self.fs, (i0 / self.fs - 3.0, i1 / self.fs), self.fs_r, rng_for(self.seed, name))
        label = {"kind": "siren_wail", "class": "siren", "name": name, "pattern": "civil", "mode": "civil",
                 "source_distance_m": 700.0, "speed_mps": 0.0, "f_hz": [round(src.f_lo, 1), round(src.f_hi, 1)],
                 "cycle_s": round(src.period, 3), "known_to_hub": True}
        self.point(name, src, Path(700.0, 20.0, self.h_mic, 0.0), Path(REF_M, 20.0, self.h_mic, 0.0), i0, i1,
                   d(name, "civil_db"), True, label, trace=True)
        return [[round(i0 / self.fs, 3), round(i1 / self.fs, 3)]]

    def horn(self, name: str) -> None:
        d = self.d
        kind = d(name, "horn_kind")
        ratio = 1.2 if d(name, "horn_six_fifths") else d(name, "horn_ratio")
        p = {"horn_kind": kind, "horn_f_hz": d(name, "horn_f_hz"), "air_horn_f_hz": d(name, "air_horn_f_hz"),
             "ratio": ratio, "horn_beeps": d(name, "horn_beeps"), "horn_beep_s": d(name, "horn_beep_s")}
        t_on = d(name, "t_frac") * self.dur
        moving = d(name, "horn_moving")
        v = d(name, "speed_kmh") / 3.6 if moving else 0.0
        rng = rng_for(self.seed, name)
        x0 = 0.0 if moving else float(rng.uniform(-15.0, 15.0))
        total = p["horn_beeps"] * (p["horn_beep_s"] + 0.3)
        i0, i1 = self.window(t_on - 1.5, t_on + total + 1.5)
        src = Horn(p, t_on, (i0 / self.fs, i1 / self.fs), self.fs_r, rng)
        h = 1.0 if kind != "air" else 2.5
        label = {"kind": f"horn_{kind}", "class": "horn", "name": name, "f_hz": src.f_hz, "beeps": src.beeps,
                 "source_distance_m": round(math.hypot(self.lane, x0), 2), "speed_mps": round(v, 3),
                 "ratio": round(ratio, 4) if kind != "single" else None}
        self.point(name, src, Path(self.lane, h, self.h_mic, t_on, v, x0), Path(REF_M, h, self.h_mic, t_on, v, x0),
                   i0, i1, d(name, "horn_db"), False, label)

    def texture(self, kind: str, make, level_db: float, params: dict) -> None:
        x, ms_a = make(self.n, self.fs, rng_for(self.seed, kind), params)
        target = 0.5 * 10 ** ((level_db - self.fsdb) / 10)
        self.mix += x * math.sqrt(target / max(ms_a, 1e-300))
        self.sources.append({"kind": kind, "class": "none", "laeq_db": round(level_db, 3)})

    def idle_engine(self) -> None:
        d, name = self.d, "idle_engine"
        rpm = d(name, "idle_rpm")
        p = {"cylinders": d(name, "idle_cylinders"), "uneven": False, "half_order_db": -30.0, "harmonic_db": 6.0,
             "slope_db_oct": -5.0, "jitter_db": 2.0, "jitter_s": 0.3, "pipe_length_m": 1.8, "resonance_db": 4.0,
             "resonance_q": 3.0, "pulse_sharpness": 3.0, "bb_centre_hz": 300.0, "rpm_story": "cruise", "rpm": rpm,
             "rpm_rise": 1.0, "pop_per_s": 0.0, "pop_db": 0.0, "rear_directivity": 0.0, "tyre_db": -40.0}
        rng = rng_for(self.seed, name)
        src = Engine(p, 0.0, (0.0, self.dur), self.fs, self.fs_r, rng)
        y = render(src, Path(float(rng.uniform(4.0, 15.0)), 0.4, self.h_mic, 0.0, 0.0, float(rng.uniform(-8, 8))),
                   0, self.n, self.fs, self.ground_q)
        level = d(name, "idle_db")
        y *= 10 ** ((level - meter.laeq(y, self.fs, self.fsdb)) / 20)
        self.mix += y
        self.sources.append({"kind": "idle_engine", "class": "none", "laeq_db": round(level, 3),
                             "rpm": round(rpm, 1), "cylinders": p["cylinders"]})
