"""Assemble one independent street scene and its labels (see the package docstring)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from simulators.noise_scene import Scene
from simulators.street_scenes import acoustics as ac
from simulators.street_scenes import signals, textures, vehicles
from simulators.street_scenes.ranges import PER_MINUTE, Draws, check_overrides

FULL_SCALE_DB = 120.0  # the Scene type's default: a digital full-scale sine is 120 dB SPL
CLASS_OF = {"exhaust_car": "exhaust", "exhaust_moto": "exhaust", "legal_car": "other", "moto_legal": "other",
            "bus": "other", "truck": "other", "horn_two_tone": "horn", "horn_single": "horn", "horn_air": "horn",
            "footsteps": "other", "door_slam": "other", "birds": "other", "babble": "other"}
H_SRC = {"vehicle": 0.4, "siren": 1.8, "horn": 0.6, "event": 1.0}
LEVEL_KEY = {"exhaust_car": "exhaust_db", "exhaust_moto": "exhaust_db", "legal_car": "legal_car_db",
             "moto_legal": "moto_legal_db", "heavy": "heavy_db"}


class _Ctx:
    def __init__(self, seed: int, dur: float, fs: int, fs_db: float, overrides: dict[str, Any]) -> None:
        self.seed, self.dur, self.fs, self.fs_db, self.ov = seed, dur, fs, fs_db, overrides
        self.n = int(round(dur * fs))
        self.draws: dict[str, dict[str, Any]] = {}
        geo = self.draws_for("geometry")
        self.lane, self.h_mic = geo("lane_distance_m"), geo("mic_height_m")
        ground, q = geo("ground_reflection"), geo("ground_q")
        self.q = q if ground else None
        self.geo = geo.log
        self.mix = np.zeros(self.n)
        self.sources: list[dict[str, Any]] = []
        self.zones: list[list[float]] = []

    def draws_for(self, name: str) -> Draws:
        return Draws(self.seed, name, self.ov, self.draws)

    def count(self, d: Draws, key: str) -> int:
        v = d(key)
        if key in self.ov and not isinstance(self.ov[key], (tuple, list)):
            return int(v)
        return int(v * self.dur / 60.0 + 0.5) if key in PER_MINUTE else int(v)

    def when(self, d: Draws) -> float:
        return 2.0 + d("t_frac") * max(self.dur - 4.0, 0.0)

    def add(self, y: np.ndarray, t0: float) -> None:
        i0 = int(round(t0 * self.fs))
        a, b = max(i0, 0), min(i0 + y.size, self.n)
        if b > a:
            self.mix[a:b] += y[a - i0:b - i0]

    def point_source(self, label: dict[str, Any], src: np.ndarray, src_t0: float, *, t_cpa: float, v: float,
                     lane: float, h_src: float, level_db: float, level_at: str, out: tuple[float, float],
                     trace: bool = False, fade_s: float = 0.8) -> None:
        """Scale ``src`` so its true level (LAFmax at 7.5 m, or at the microphone) is ``level_db``; render it at
        the microphone, add it to the mix, and label it from its own isolated rendering."""
        fs = self.fs
        if fade_s > 0:  # the vehicle turns into / out of the street
            ramp = np.minimum(np.arange(src.size), src.size - 1 - np.arange(src.size)) / (fade_s * fs)
            src = src * np.sin(0.5 * np.pi * np.minimum(1.0, ramp)) ** 2
        t0, n_out = out[0], int((out[1] - out[0]) * fs)
        geom: dict[str, Any] = {"t_cpa": t_cpa, "v": v, "h_src": h_src, "h_mic": self.h_mic, "ground_q": self.q}
        if v:  # one air-absorption reference for both renderings (path lengths up to r_ref)
            half = max(abs(out[0] - t_cpa), abs(out[1] - t_cpa))
            r_ref = max(200.0, float(np.hypot(max(lane, 7.5) + h_src + self.h_mic, abs(v) * half)))
            geom["absorbed"] = (r_ref, ac.absorb(src, fs, r_ref))
        y_mic = ac.render(src, src_t0, fs, t0, n_out, lane_m=lane, **geom)
        y_ref = ac.render(src, src_t0, fs, t0, n_out, lane_m=7.5, **geom)
        laf_ref, sel_ref = ac.laf_and_sel_db(y_ref, fs, self.fs_db)
        laf_mic = ac.laf_db(y_mic, fs, self.fs_db)
        ref_max = float(laf_ref.max()) if level_at == "7.5m" else float(laf_mic.max())
        g_db = level_db - ref_max
        g = 10 ** (g_db / 20)
        y_mic *= g
        laf_mic += g_db
        laf_ref += g_db
        i_pk = int(np.argmax(laf_mic))
        loud = np.flatnonzero(laf_mic >= laf_mic[i_pk] - 20.0)
        label.update({
            "t_peak": round(float(t0 + i_pk / fs), 3), "t_start": round(float(t0 + loud[0] / fs), 3),
            "t_end": round(float(t0 + loud[-1] / fs), 3),
            "lafmax_7p5_db": round(float(laf_ref.max()), 2), "lafmax_mic_db": round(float(laf_mic[i_pk]), 2),
            "sel_7p5_db": round(sel_ref + g_db, 2),
            "source_distance_m": round(float(lane), 2), "speed_mps": round(float(abs(v)), 2),
            "peak_fs_alone": round(float(np.max(np.abs(y_mic))), 4),
        })
        if trace:
            step = fs // 10
            k0 = max(0, int(np.ceil(-t0 * 10)))  # frames that start inside the scene
            frames = laf_mic[: (laf_mic.size // step) * step].reshape(-1, step).max(axis=1)[k0:]
            label["laf_trace_t0"] = round(float(t0 + k0 / 10), 3)
            label["laf_trace"] = [round(float(v), 1) for v in frames]
        self.sources.append(label)
        self.add(y_mic, t0)


def _background(c: _Ctx) -> None:
    parts: list[tuple[str, str | None, str, Any]] = [
        ("road_roar", None, "road_roar_db", textures.road_roar),
        ("distant_traffic", None, "distant_db", textures.distant_traffic),
        ("idle_engine", "idle_engine", "idle_db", textures.idle_engine),
        ("wind", "wind", "wind_db", textures.wind),
        ("rain", "rain", "rain_db", textures.rain),
    ]
    for name, flag, level_key, make in parts:
        d = c.draws_for(f"bg:{name}")
        if flag is not None and not d(flag):
            continue
        level = d(level_key)
        x = make(d, d.noise, c.n, c.fs)
        x *= 10 ** ((level - ac.laeq_db(x, c.fs, c.fs_db)) / 20)
        c.mix += x
        c.sources.append({"kind": name, "class": "none", "laeq_db": round(float(level), 2)})


def _events(c: _Ctx) -> None:
    d0 = c.draws_for("events")
    for i in range(c.count(d0, "n_events")):
        d = c.draws_for(f"event:{i}")
        kind, level, dist, t = d("event_kind"), d("event_db"), d("event_dist_m"), c.when(d)
        x = textures.event(kind, d, c.fs)
        c.point_source({"kind": kind, "class": CLASS_OF[kind]}, x, t, t_cpa=t, v=0.0, lane=dist,
                       h_src=H_SRC["event"], level_db=level, level_at="mic", out=(t, t + x.size / c.fs + 0.3),
                       fade_s=0.0)


def _vehicle(c: _Ctx, kind: str, name: str, t_cpa: float | None = None) -> float:
    d = c.draws_for(name)
    t = c.when(d) if t_cpa is None else t_cpa
    v = d("speed_kmh") / 3.6 * d("direction")
    level = d(LEVEL_KEY[kind])
    half = float(np.clip((150.0 if kind != "legal_car" else 80.0) / abs(v), 4.0, 12.0))
    out = (t - half, t + half)
    src_t0 = out[0] - np.hypot(c.lane + 1, abs(v) * half) / ac.C_AIR - 0.05
    n_src = int((out[1] - src_t0) * c.fs) + 16
    x, meta = vehicles.vehicle(kind, d, d.noise, c.fs, n_src, v)
    real_kind = meta.pop("heavy_kind", kind)
    label = {"kind": real_kind, "class": CLASS_OF[str(real_kind)], **meta}
    c.point_source(label, x, src_t0, t_cpa=t, v=v, lane=c.lane, h_src=H_SRC["vehicle"], level_db=level,
                   level_at="7.5m", out=out, fade_s=0.35 * half)
    return t


def _traffic(c: _Ctx) -> None:
    d0 = c.draws_for("traffic")
    k = 0
    for kind in ("exhaust_car", "exhaust_moto", "legal_car", "moto_legal", "heavy"):
        for _ in range(c.count(d0, f"n_{kind}")):
            t = _vehicle(c, kind, f"vehicle:{k}")
            k += 1
            if kind.startswith("exhaust"):
                dp = c.draws_for(f"pair:{k}")
                pair, partner, gap = dp("close_pair"), dp("close_partner"), dp("close_gap_s")
                if pair and 0.5 < t + gap < c.dur - 0.5:
                    _vehicle(c, partner, f"vehicle:{k}:partner", t_cpa=t + gap)


def _sirens(c: _Ctx) -> None:
    d0 = c.draws_for("sirens")
    for i in range(c.count(d0, "n_siren")):
        d = c.draws_for(f"siren:{i}")
        mode = d("siren_mode")
        speed, direction, hub = d("speed_kmh") / 3.6, d("direction"), d("hub_zone")
        far_dist, far_db, passing_db, dur = (d("siren_far_dist_m"), d("siren_far_db"), d("siren_db"),
                                             d("siren_duration_s"))
        if mode == "passing":
            t = c.when(d)
            v = max(speed, 30 / 3.6) * direction
            half = float(np.clip(200.0 / abs(v), 6.0, 14.0))
            out = (t - half, t + half)
            src_t0 = out[0] - np.hypot(c.lane + 2, abs(v) * half) / ac.C_AIR - 0.05
            x, meta = signals.siren(d, d.noise, c.fs, int((out[1] - src_t0) * c.fs) + 16)
            label = {"kind": f"siren_{meta['pattern']}", "class": "siren", "mode": mode, **meta}
            c.point_source(label, x, src_t0, t_cpa=t, v=v, lane=c.lane, h_src=H_SRC["siren"], level_db=passing_db,
                           level_at="7.5m", out=out, trace=True, fade_s=0.3 * half)
        else:
            dur = min(dur, c.dur)
            start = d("t_frac") * (c.dur - dur)
            x, meta = signals.siren(d, d.noise, c.fs, int(dur * c.fs))
            label = {"kind": f"siren_{meta['pattern']}", "class": "siren", "mode": mode,
                     "hub_zone_active": bool(hub), **meta}
            src_t0 = start - far_dist / ac.C_AIR
            c.point_source(label, x, src_t0, t_cpa=start, v=0.0, lane=far_dist, h_src=H_SRC["siren"],
                           level_db=far_db, level_at="7.5m", out=(start, start + dur), trace=True, fade_s=0.0)
            if hub:
                c.zones.append([round(float(start), 3), round(float(start + dur), 3)])


def _horns(c: _Ctx) -> None:
    d0 = c.draws_for("horns")
    for i in range(c.count(d0, "n_horn")):
        d = c.draws_for(f"horn:{i}")
        kind = d("horn_kind")
        t, v = c.when(d), d("horn_speed_kmh") / 3.6 * d("direction")
        level, offset = d("horn_db"), d("horn_offset_s")
        x, meta = signals.horn(d, d.noise, c.fs, kind)
        src_t0 = t + offset
        out = (src_t0, src_t0 + x.size / c.fs + 0.3)
        label = {"kind": f"horn_{kind}", "class": "horn", **meta}
        c.point_source(label, x, src_t0, t_cpa=t, v=v, lane=c.lane, h_src=H_SRC["horn"], level_db=level,
                       level_at="7.5m", out=out, fade_s=0.0)


def generate(seed: int, duration_s: float = 60.0, fs: int = 48_000, **overrides: Any) -> Scene:
    """One scene of the independent family; deterministic per (seed, duration_s, fs, overrides).

    Extra keywords besides the ``RANGES`` keys: ``full_scale_db`` (SPL of a digital full-scale sine, default
    120) and ``calibration_tone_db`` (the scene is then only a 1 kHz calibrator tone at that level)."""
    ov = dict(overrides)
    fs_db = float(ov.pop("full_scale_db", FULL_SCALE_DB))
    cal = ov.pop("calibration_tone_db", None)
    check_overrides(ov)
    if duration_s < 4.0 or fs < 8000:
        raise ValueError(f"duration_s {duration_s} / fs {fs}: need at least 4 s and 8 kHz")
    c = _Ctx(int(seed), float(duration_s), int(fs), fs_db, ov)
    if cal is not None:
        t = np.arange(c.n) / fs
        c.mix += np.sqrt(2.0) * ac.db_to_rms(float(cal), fs_db) * np.sin(2 * np.pi * 1000.0 * t)
        c.sources.append({"kind": "calibrator", "class": "none", "laeq_db": float(cal), "f_hz": 1000.0})
    else:
        _background(c)
        _events(c)
        _traffic(c)
        _sirens(c)
        _horns(c)
    clipped = int(np.count_nonzero(np.abs(c.mix) >= 1.0))
    audio = np.clip(c.mix, -1.0, 1.0).astype(np.float32)  # the ADC: nothing beyond digital full scale
    for s in c.sources:
        if "t_peak" in s:
            a, b = (max(0, int((s["t_peak"] - 1.0) * fs)), min(c.n, int((s["t_peak"] + 1.0) * fs)))
            s["overload"] = bool(b > a and np.any(np.abs(c.mix[a:b]) >= 1.0))
    labels: dict[str, object] = {
        "v": 1, "family": "independent", "generator": "simulators.street_scenes", "seed": int(seed), "fs": fs,
        "duration_s": float(duration_s), "distance_m": round(c.lane, 2), "mic_height_m": round(c.h_mic, 2),
        "ground_q": None if c.q is None else round(c.q, 3), "full_scale_db": fs_db,
        "zone_siren_active": c.zones, "sources": c.sources, "peak_fs": round(float(np.max(np.abs(audio))), 4),
        "clipped_samples": clipped, "overrides": {k: v for k, v in overrides.items()}, "draws": c.draws,
    }
    return Scene(audio=audio, fs=fs, labels=labels, sources=c.sources)


def scene_seeds(count: int, seed: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(int(count))]


def scenes(count: int, seed: int, **kwargs: Any) -> Iterator[Scene]:
    """``count`` scenes with seeds derived from ``seed`` (``scene_seeds``); kwargs go to ``generate``."""
    for s in scene_seeds(count, seed):
        yield generate(s, **kwargs)
