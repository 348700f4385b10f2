"""Compose one kerbside scene: draw the street, the sources and the textures, render every point source through
the canyon twice (the scene's lane and the 7.5 m truth lane), scale, mix, apply the MEMS microphone, clip."""

from __future__ import annotations

import math

import numpy as np

from simulators.kerbside_scenes import calls, textures
from simulators.kerbside_scenes.canyon import Street, air_lowpass, laeq_db, level_summary, mems, propagate
from simulators.kerbside_scenes.engines import CTRL_HZ, Motion, motion
from simulators.kerbside_scenes.ranges import RANGES, Draws
from simulators.kerbside_scenes.vehicles import EXHAUST, OTHER, level_db, vehicle
from simulators.noise_scene import Scene

FAMILY = "kerbside"
COUNT_KEY = {"exhaust_car": "n_exhaust_car", "exhaust_moto": "n_exhaust_moto", "legal_car": "n_legal_car",
             "moto_legal": "n_moto_legal", "scooter": "n_scooter", "ev_car": "n_ev", "bus": "n_bus",
             "truck": "n_truck", "tram": "n_tram", "music_car": "n_music_car"}
QUIET = {**{k: 0 for k in RANGES if k.startswith("n_")}, "wind": False, "rain": False, "civil_siren": False,
         "distant_db": 20.0}
EDGE_S = 0.8  # fade at both ends of a source window (it turns into or out of the street)


def quiet(**adds) -> dict:
    """Overrides that leave only what the caller adds back, over a 20 dB distant-traffic floor."""
    return {**QUIET, **adds}


def scene_seeds(count: int, seed: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence([int(seed), 0x6B657262]).generate_state(count, np.uint32)]


def _taper(x: np.ndarray, fs: int) -> np.ndarray:
    k = min(int(EDGE_S * fs), x.size // 2)
    if k > 1:
        ramp = (0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)).astype(np.float32)
        x[:k] *= ramp
        x[-k:] *= ramp[::-1]
    return x


class _Mixer:
    def __init__(self, dr: Draws, fs: int, n: int, street: Street) -> None:
        self.dr, self.fs, self.n, self.street = dr, fs, n, street
        self.mix = np.zeros(n, np.float32)
        self.sources: list[dict] = []
        self.peaks: list[tuple[dict, float]] = []

    def add(self, part: str, kind: str, cls: str, sig: np.ndarray, x: np.ndarray, t0: float, h: float,
            level: float, *, at_mic: bool = False, dist: float | None = None, street: Street | None = None,
            extra: dict | None = None, speed: float = 0.0) -> dict:
        fs = self.fs
        street = street or self.street
        sig = _taper(sig.astype(np.float32), fs)
        mic = propagate(sig, fs, x, h, street)
        ms = level_summary(mic, fs, t0)
        if at_mic:
            g = 10 ** ((level - ms["lafmax"]) / 20)
            l7, sel7 = level + 20 * math.log10(dist / 7.5), ms["sel"] + 20 * math.log10(g * dist / 7.5)
        else:
            tr = level_summary(propagate(sig, fs, x, h, street.at_7p5()), fs, t0)
            g = 10 ** ((level - tr["lafmax"]) / 20)
            l7, sel7 = level, tr["sel"] + 20 * math.log10(g)
        gdb = 20 * math.log10(g)
        ms = {**ms, "lafmax": ms["lafmax"] + gdb, "trace": [round(v + gdb, 2) for v in ms["trace"]]}
        mic *= g
        src = {"kind": kind, "class": cls, "name": part, "t_peak": round(ms["t_peak"], 3),
               "t_start": round(ms["t_start"], 3), "t_end": round(ms["t_end"], 3), "lafmax_7p5_db": round(l7, 3),
               "lafmax_mic_db": round(ms["lafmax"], 3), "sel_7p5_db": round(sel7, 3),
               "source_distance_m": round(dist if dist is not None else street.d, 3), "speed_mps": round(speed, 3)}
        if cls == "siren":
            src.update(laf_trace=ms["trace"], laf_trace_t0=round(t0, 3))
        src.update(extra or {})
        i0 = int(round(t0 * fs))
        a, b = max(i0, 0), min(i0 + mic.size, self.n)
        if b > a:
            self.mix[a:b] += mic[a - i0:b - i0]
        self.sources.append(src)
        self.peaks.append((src, float(np.max(np.abs(mic))) if mic.size else 0.0))
        return src


def _street(dr: Draws) -> Street:
    d = dr("street", "lane_distance_m")
    a = dr("street", "mic_setback_m")
    w = max(dr("street", "street_width_m"), d + a + 3.0)
    return Street(d=d, mic_h=dr("street", "mic_height_m"), setback=a, width=w, open_side=dr("street", "open_side"),
                  facade_r=dr("street", "facade_r"), facade_hf=dr("street", "facade_hf_hz"),
                  ground_q=dr("street", "ground_q"))


def _vehicles(mx: _Mixer, duration_s: float) -> None:
    dr, fs = mx.dr, mx.fs
    prev = None
    for kind in (*EXHAUST, *OTHER):
        for i in range(dr.count(COUNT_KEY[kind], duration_s)):
            part = f"{kind}#{i}"
            t_cpa = dr(part, "t_frac") * duration_s
            if prev is not None and dr(part, "platoon"):
                t_cpa = prev + dr(part, "platoon_gap_s")
            prev = t_cpa
            sig, m, h, info = vehicle(dr, part, kind, fs, t_cpa)
            cls = "exhaust" if kind in EXHAUST else "other"
            mx.add(part, kind, cls, sig, m.x, m.t0, h, level_db(dr, part, kind), speed=info["speed_mps"],
                   extra={"t_cpa": round(t_cpa, 3), **info})


def _sirens(mx: _Mixer, duration_s: float) -> list[list[float]]:
    dr, fs, zone = mx.dr, mx.fs, []
    for i in range(dr.count("n_siren", duration_s)):
        part = f"siren#{i}"
        t_c = dr(part, "t_frac") * duration_s
        if dr(part, "siren_mode") == "passing":
            v = max(dr(part, "speed_mps"), 8.0)
            m = motion(dr, part, t_c, v, dr(part, "direction"), "cruise")
            n = int(round((m.x.size - 1) / CTRL_HZ * fs))
            sig, info = calls.siren(dr, part, fs, n)
            mx.add(part, f"siren_{info['pattern']}", "siren", sig, m.x, m.t0, 1.8, dr(part, "siren_db"), speed=v,
                   extra={**info, "mode": "passing", "t_cpa": round(t_c, 3)})
        else:
            far = dr(part, "siren_far_m")
            n = int(12 * fs)
            sig, info = calls.siren(dr, part, fs, n)
            sig = air_lowpass(sig, fs, far)
            x = np.full(12 * CTRL_HZ + 1, far * dr(part, "direction"))
            mx.add(part, f"siren_{info['pattern']}", "siren", sig, x, t_c - 6.0, 1.8, dr(part, "siren_far_db"),
                   at_mic=True, dist=far, extra={**info, "mode": "far"})
    if dr("civil", "civil_siren"):
        t_on = dr("civil", "t_frac") * duration_s
        dist = dr("civil", "civil_m")
        n = int((duration_s - t_on) * fs) + fs
        sig = air_lowpass(calls.civil_siren(fs, n, 0.0, dr.rng("civil")), fs, dist)
        x = np.full(int(n / fs * CTRL_HZ) + 2, dist)
        street = Street(d=mx.street.d, mic_h=mx.street.mic_h, setback=mx.street.setback, width=mx.street.width,
                        open_side=True, facade_r=0.0, facade_hf=1000.0, ground_q=mx.street.ground_q)
        src = mx.add("civil", "siren_civil", "siren", sig, x, t_on, 20.0, dr("civil", "civil_db"), at_mic=True,
                     dist=dist, street=street, extra={"pattern": "civil", "mode": "civil"})
        zone.append([round(t_on, 3), round(max(duration_s, src["t_end"]), 3)])
    return zone


def _horns_and_events(mx: _Mixer, duration_s: float) -> None:
    dr, fs = mx.dr, mx.fs
    for i in range(dr.count("n_horn", duration_s)):
        part = f"horn#{i}"
        t_on = dr(part, "t_frac") * duration_s
        v = dr(part, "horn_speed_mps")
        if v >= 1.0:
            m = motion(dr, part, t_on + 0.5, v, dr(part, "direction"), "cruise")
        else:
            x0 = dr.rng(part + "/where").uniform(-10, 10)
            m = Motion(t_on - 1.0, np.full(8 * CTRL_HZ + 1, x0), np.zeros(8 * CTRL_HZ + 1), t_on, "parked")
        n = int(round((m.x.size - 1) / CTRL_HZ * fs))
        sig, info = calls.horn(dr, part, fs, n, t_on - m.t0)
        mx.add(part, f"horn_{info['horn']}", "horn", sig, m.x, m.t0, 0.6, dr(part, "horn_db"), speed=v, extra=info)
    for i in range(dr.count("n_event", duration_s)):
        part = f"event#{i}"
        kind = dr(part, "event_kind")
        dist = dr(part, "event_dist_m")
        n = int((dr(part, "event_s") + 1.5) * fs)
        sig, info = calls.event(dr, part, kind, fs, n)
        y = min(0.5 * dist, mx.street.d)
        x = np.full(int(n / fs * CTRL_HZ) + 2, math.sqrt(dist * dist - y * y))
        st = Street(d=y, mic_h=mx.street.mic_h, setback=mx.street.setback, width=mx.street.width,
                    open_side=mx.street.open_side, facade_r=mx.street.facade_r, facade_hf=mx.street.facade_hf,
                    ground_q=mx.street.ground_q)
        mx.add(part, kind, "other", sig, x, dr(part, "t_frac") * duration_s - 0.5, 1.0, dr(part, "event_db"),
               at_mic=True, dist=dist, street=st, extra=info)


def _textures(mx: _Mixer, duration_s: float) -> np.ndarray:
    dr, fs, n = mx.dr, mx.fs, mx.n
    parts = [("distant_traffic", dr("distant", "distant_db"), *textures.distant(dr, fs, n, duration_s))]
    if dr("wind", "wind"):
        parts.append(("wind", dr("wind", "wind_db"), *textures.wind(dr, fs, n, duration_s)))
    if dr("rain", "rain"):
        parts.append(("rain", dr("rain", "rain_db"), *textures.rain(dr, fs, n)))
    for kind, level, sig, info in parts:
        g = 10 ** ((level - laeq_db(sig, fs)) / 20)
        mx.mix += sig * np.float32(g)
        mx.sources.append({"kind": kind, "class": "none", "laeq_db": round(level, 3), **info})
    sn = textures.self_noise(dr, fs, n)
    level = dr("street", "self_noise_db")
    sn *= np.float32(10 ** ((level - laeq_db(sn, fs)) / 20))
    mx.sources.append({"kind": "mic_self_noise", "class": "none", "laeq_db": round(level, 3)})
    return sn


def _jsonable(v):
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def generate(seed: int, duration_s: float = 60.0, fs: int = 48_000, *, full_scale_db: float = 120.0,
             calibration_tone_db: float | None = None, **overrides) -> Scene:
    """One kerbside scene, deterministic per seed and arguments (docs/noise-scenes.md, "Kerbside family")."""
    if not isinstance(duration_s, (int, float)) or not 1.0 <= duration_s <= 3600.0:
        raise ValueError(f"duration_s {duration_s!r}: need 1 to 3600 s")
    if not isinstance(fs, int) or fs < 44_100 or fs % 1000:
        raise ValueError(f"fs {fs!r}: need an integer >= 44100 divisible by 1000")
    if not 60.0 <= float(full_scale_db) <= 180.0:
        raise ValueError(f"full_scale_db {full_scale_db!r}: need 60 to 180 dB")
    dr = Draws(seed, overrides)
    n = int(round(duration_s * fs))
    to_fs = 10 ** ((120.0 - float(full_scale_db)) / 20)
    labels: dict = {"v": 1, "family": FAMILY, "generator": "simulators.kerbside_scenes", "seed": int(seed), "fs": fs,
                    "duration_s": float(duration_s), "full_scale_db": float(full_scale_db)}
    if calibration_tone_db is not None:
        t = np.arange(n) / fs
        audio = (10 ** ((calibration_tone_db - 120.0) / 20) * to_fs
                 * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
        src = [{"kind": "calibrator", "class": "none", "laeq_db": float(calibration_tone_db)}]
        labels.update(distance_m=7.5, mic_height_m=1.5, ground_q=None, zone_siren_active=[], sources=src,
                      peak_fs=float(np.max(np.abs(audio))), clipped_samples=0, overrides={}, draws={})
        return Scene(audio=np.clip(audio, -1.0, 1.0), fs=fs, labels=labels, sources=src)
    street = _street(dr)
    mx = _Mixer(dr, fs, n, street)
    _vehicles(mx, duration_s)
    zone = _sirens(mx, duration_s)
    _horns_and_events(mx, duration_s)
    noise = _textures(mx, duration_s)
    mic_on = dr("street", "mems_response")
    mic = {"mems": bool(mic_on)}
    mix = mx.mix
    if mic_on:
        hp, pk, pf = dr("street", "mems_hp_hz"), dr("street", "mems_peak_db"), dr("street", "mems_peak_hz")
        mix = mems(mix, fs, hp, pk, min(pf, 0.4 * fs))
        mic.update(hp_hz=hp, peak_db=pk, peak_hz=pf)
    raw = (mix + noise) * np.float32(to_fs)
    over = np.abs(raw) >= 1.0
    audio = np.clip(raw, -1.0, 1.0).astype(np.float32)
    clipped = np.flatnonzero(over)
    for src, peak in mx.peaks:
        src["peak_fs_alone"] = round(peak * to_fs, 6)
        k = int(round(src["t_peak"] * fs))
        lo, hi = np.searchsorted(clipped, [k - fs, k + fs])
        src["overload"] = bool(hi > lo)
    labels.update(distance_m=round(street.d, 3), mic_height_m=round(street.mic_h, 3), ground_q=round(street.ground_q, 4),
                  street={"setback_m": round(street.setback, 3), "width_m": round(street.width, 3),
                          "open_side": bool(street.open_side), "facade_r": round(street.facade_r, 4),
                          "facade_hf_hz": round(street.facade_hf, 1)},
                  microphone=mic, zone_siren_active=zone, sources=mx.sources,
                  peak_fs=round(float(np.max(np.abs(raw))) if n else 0.0, 6), clipped_samples=int(clipped.size),
                  overrides={k: _jsonable(v) if not isinstance(v, list) else [_jsonable(x) for x in v]
                             for k, v in dr.overrides.items()},
                  draws={p: {k: _jsonable(v) for k, v in d.items()} for p, d in dr.log.items()})
    return Scene(audio=audio, fs=fs, labels=labels, sources=mx.sources)


def scenes(count: int, seed: int, **kw):
    for s in scene_seeds(count, seed):
        yield generate(s, **kw)
