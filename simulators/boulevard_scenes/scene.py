"""Assembling one boulevard scene: the avenue, its traffic, calls, distractors, background, microphone and ADC."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from scipy import signal

from simulators.boulevard_scenes import calls, distract, engines, textures
from simulators.boulevard_scenes.meter import describe, laeq_db, lafmax
from simulators.boulevard_scenes.ranges import COUNTS, Draws, check_overrides, unit
from simulators.boulevard_scenes.render import Emitter, Medium, Path, render, with_tail
from simulators.noise_scene import Scene

FAMILY = "boulevard"
SEED_SALT = 0x626C7664  # "blvd"
TRUTH_M = 7.5
QUIET = {**{k: 0 for k in COUNTS}, "texture_layers": 1, "texture_db": 30.0, "self_noise_db": 22.0, "wind": False,
         "rain": False, "civil_siren": False, "mic_kind": "analog", "capsule_lp_hz": 20000.0, "platoon": False,
         "overtake": False, "direction": 1, "lane_pick": 0.0, "t_frac": 0.5, "siren_start": "before"}
KIND_CLASS = {"exhaust_car": "exhaust", "exhaust_moto": "exhaust", "legal_car": "other", "moto_legal": "other",
              "bus": "other", "truck": "other", "scooter": "other", "tram": "other"}
LEVEL_KEY = {"legal_car": "legal_car_db", "moto_legal": "moto_legal_db", "bus": "heavy_db", "truck": "heavy_db",
             "scooter": "scooter_db", "tram": "tram_db"}


def quiet(**adds: object) -> dict:
    """Overrides that leave only what the caller adds back, over a 30 dB texture and 22 dB self-noise."""
    return {**QUIET, **adds}


def scene_seeds(count: int, seed: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence([seed, SEED_SALT]).generate_state(count)]


def scenes(count: int, seed: int, **kwargs) -> Iterator[Scene]:
    for s in scene_seeds(count, seed):
        yield generate(s, **kwargs)


class Mix:
    def __init__(self, n: int, fs: int, fs_db: float) -> None:
        self.y, self.fs, self.fs_db, self.sources = np.zeros(n), fs, fs_db, []

    def add(self, i0: int, y: np.ndarray, src: dict, truth_db: float | None = None, dist: float | None = None):
        n = self.y.size
        a, b = max(i0, 0), min(i0 + y.size, n)
        if b - a < self.fs // 10:
            return
        part = y[a - i0:b - i0]
        self.y[a:b] += part
        top, _, laf = lafmax(part, self.fs, self.fs_db)
        src.update(describe(laf, a / self.fs, self.fs))
        src["peak_fs_alone"] = round(float(np.max(np.abs(part))), 5)
        if truth_db is None:
            truth_db = top + 20 * math.log10(dist / TRUTH_M)
        src["lafmax_7p5_db"] = round(float(truth_db), 3)
        self.sources.append(src)


def _place(mix: Mix, em: Emitter, med: Medium, target_db: float, harmonic_db: float | None, src: dict) -> None:
    """Scale a moving source so that its LAFmax 7.5 m from its path (same avenue) is target_db, and mix it."""
    fs = mix.fs
    it, tt, nt, ct = render(Emitter(**{**em.__dict__, "path": em.path.moved(TRUTH_M)}), fs, med)
    pt, pn = float(np.mean(tt * tt)) + 1e-30, float(np.mean(nt * nt)) + 1e-30
    gn = 1.0 if harmonic_db is None else math.sqrt(pt / pn * 10 ** (-harmonic_db / 10))
    gc = math.sqrt(2 * pt)
    top, _, _ = lafmax(with_tail(tt + gn * nt + gc * ct, med), fs, mix.fs_db)
    g = 10 ** ((target_db - top) / 20)
    if abs(em.path.lateral - TRUTH_M) < 1e-9:
        i0, y = it, g * with_tail(tt + gn * nt + gc * ct, med)
    else:
        i0, tm, nm, cm = render(em, fs, med)
        y = g * with_tail(tm + gn * nm + gc * cm, med)
    mix.add(i0, y, src, truth_db=target_db)


def _medium(d: Draws, fs: int) -> Medium:
    rng = np.random.default_rng(d.rng_seed("canopy"))
    ts, tdb = d("canopy", "tail_s"), d("canopy", "tail_db")
    return Medium(d("air", "air_db_per_100m") / 100, d("canopy", "canopy_db"), d("canopy", "canopy_rate_hz"),
                  tuple(rng.uniform(0, 2 * math.pi, 3)), _tail(rng, ts, tdb, fs))


def _tail(rng, length: float, level_db: float, fs: int) -> np.ndarray:
    n = int(length * fs)
    t = np.arange(n) / fs
    h = rng.standard_normal(n) * np.exp(-6.9 * t / length) * np.minimum(1, t / 0.01)
    h[: int(0.004 * fs)] = 0.0
    return h * math.sqrt(10 ** (level_db / 10) / float(np.sum(h * h)))


def _count(d: Draws, key: str, duration: float) -> int:
    if key in d.over:
        return int(d.over[key])
    rate = d("traffic", key) * duration / 60.0
    return int(math.floor(rate) + (unit(d.seed, "traffic", key + "~round") < rate - math.floor(rate)))


def generate(seed: int, duration_s: float = 60.0, fs: int = 48000, *, full_scale_db: float = 120.0,
             calibration_tone_db: float | None = None, **overrides: object) -> Scene:
    """One scene, deterministic per seed and arguments (docs/noise-scenes.md, "Boulevard family")."""
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float) or not 1.0 <= duration_s <= 3600.0:
        raise ValueError(f"duration_s {duration_s!r}: expected 1-3600 s")
    if isinstance(full_scale_db, bool) or not isinstance(full_scale_db, int | float) \
            or not 60.0 <= full_scale_db <= 180.0:
        raise ValueError(f"full_scale_db {full_scale_db!r}: expected 60-180 dB")
    if not isinstance(fs, int) or isinstance(fs, bool) or not 44100 <= fs <= 192000 or fs % 20:
        raise ValueError(f"fs {fs!r}: an integer 44100-192000 Hz divisible by 20 expected")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed {seed!r}: an integer expected")
    seed, duration_s, full_scale_db = int(seed), float(duration_s), float(full_scale_db)
    ov = check_overrides(overrides)
    d = Draws(seed, ov)
    n = int(round(duration_s * fs))
    labels: dict = {"v": 1, "family": FAMILY, "generator": __name__, "seed": seed, "fs": fs,
                    "duration_s": duration_s, "full_scale_db": full_scale_db, "zone_siren_active": [],
                    "overrides": {k: (list(v) if isinstance(v, tuple) else v) for k, v in ov.items()}}
    mix = Mix(n, fs, full_scale_db)
    if calibration_tone_db is not None:
        if isinstance(calibration_tone_db, bool) or not isinstance(calibration_tone_db, int | float) \
                or not 30.0 <= calibration_tone_db <= full_scale_db:
            raise ValueError(f"calibration_tone_db {calibration_tone_db!r}: expected 30 dB up to the full scale")
        amp = 10 ** ((calibration_tone_db - full_scale_db) / 20)
        mix.y[:] = amp * np.sin(2 * math.pi * 1000.0 * np.arange(n) / fs)
        mix.sources.append({"kind": "calibrator", "class": "none", "laeq_db": float(calibration_tone_db)})
        labels.update(distance_m=None, mic_height_m=None)
        return _finish(mix, labels, d)
    lane_d, mic_h = d("street", "lane_distance_m"), d("street", "mic_height_m")
    lanes, width, median = d("street", "lanes_each_way"), d("street", "lane_width_m"), d("street", "median_m")
    labels.update(distance_m=round(lane_d, 3), mic_height_m=round(mic_h, 3),
                  avenue={"lanes_each_way": lanes, "lane_width_m": round(width, 3), "median_m": round(median, 3)})
    med = _medium(d, fs)
    prev_t: float | None = None

    def path_for(part: str, t_cpa: float, speed: float, height: float, filtering: bool = False, after: float = 0.0):
        direction = d(part, "direction")
        idx = min(lanes - 1, int(d(part, "lane_pick") * lanes))
        off = idx + (0.5 if filtering else 0.0)
        lat = lane_d + off * width if direction == 1 else lane_d + (lanes + off) * width + median
        span = max(3.5, 55.0 / speed)
        t = calls.emission_grid(t_cpa - span, t_cpa + span + after)
        return Path(t, direction * speed * (t - t_cpa), lat, mic_h - height), direction, idx

    def when(part: str) -> float:
        nonlocal prev_t
        t = d(part, "t_frac") * duration_s
        if prev_t is not None and d(part, "platoon"):
            t = min(prev_t + d(part, "platoon_gap_s"), duration_s - 0.5)
        prev_t = t
        return t

    heavy_n = _count(d, "n_heavy", duration_s)
    rides: list = []  # the vehicles placed so far: a horn may sound on one of them
    plan = [("exhaust_car", _count(d, "n_exhaust_car", duration_s)),
            ("exhaust_moto", _count(d, "n_exhaust_moto", duration_s)),
            ("legal_car", _count(d, "n_legal_car", duration_s)), ("moto_legal", _count(d, "n_moto_legal", duration_s)),
            ("heavy", heavy_n), ("scooter", _count(d, "n_scooter", duration_s))]
    for kind, count in plan:
        for i in range(count):
            part = f"{kind}#{i}"
            t_cpa = when(part)
            k = kind if kind != "heavy" else ("bus" if unit(seed, part, "~bus") < 0.5 else "truck")
            speed = d(part, "speed_mps") * (0.75 if k in ("bus", "truck") else 1.0)
            moto = k in ("exhaust_moto", "moto_legal", "scooter")
            over = d(part, "overtake") and lanes > 1
            if moto and over:
                speed += d(part, "filter_speed_mps")
            h = d(part, "src_height_m") + (0.6 if k in ("bus", "truck") else 0.0)
            path, direction, idx = path_for(part, t_cpa, speed, h, filtering=moto and over)
            em, det = engines.vehicle(k, part, d, path, t_cpa, fs)
            rides.append((part, path, t_cpa, speed, direction, idx, h))
            if k in KIND_CLASS and KIND_CLASS[k] == "exhaust":
                core = "exhaust_db" not in ov and d(part, "exhaust_core")
                level = d(part, "exhaust_core_db") if core else d(part, "exhaust_db")
            else:
                level = d(part, LEVEL_KEY[k])
            src = {"kind": k, "class": KIND_CLASS[k], "name": part, "speed_mps": round(speed, 3),
                   "direction": direction, "lane": idx, "source_distance_m": round(path.lateral, 3),
                   "filtering": bool(moto and over), **det}
            _place(mix, em, med, level, det["harmonic_db"], src)
            if over and not moto:  # it overtakes a slower car on the next lane (out, or in from the outermost)
                op = part + "/overtaken"
                slow = max(6.0, speed - 6.0)
                t2 = t_cpa + d(op, "overtake_gap_s")
                lane2 = idx + 1 if idx + 1 < lanes else idx - 1
                p2 = Path(path.t, direction * slow * (path.t - t2), path.lateral + (lane2 - idx) * width, path.dz)
                em2, det2 = engines.vehicle("legal_car", op, d, p2, t2, fs)
                _place(mix, em2, med, d(op, "legal_car_db"), det2["harmonic_db"],
                       {"kind": "legal_car", "class": "other", "name": op, "speed_mps": round(slow, 3),
                        "direction": direction, "lane": lane2, "source_distance_m": round(p2.lateral, 3), **det2})
    for i in range(_count(d, "n_tram", duration_s)):
        part = f"tram#{i}"
        t_cpa, speed = when(part), 0.45 * d(part, "speed_mps")
        span = min(12.0, max(5.0, 60.0 / speed))
        t = calls.emission_grid(t_cpa - span, t_cpa + span)
        path = Path(t, speed * (t - t_cpa), lane_d + lanes * width + median / 2, mic_h - 1.0)
        em, det = calls.tram(part, d, path, speed)
        _place(mix, em, med, d(part, "tram_db"), None, {"kind": "tram", "class": "other", "name": part,
               "speed_mps": round(speed, 3), "source_distance_m": round(path.lateral, 3), "t_cpa": t_cpa, **det})
    for kind, key, level in (("siren", "n_siren", "siren_db"), ("horn", "n_horn", "horn_db")):
        for i in range(_count(d, key, duration_s)):
            part = f"{kind}#{i}"
            t_cpa = when(part)
            speed = d(part, "speed_mps") * (1.15 if kind == "siren" else 1.0)
            path, direction, idx = path_for(part, t_cpa, speed, 1.9 if kind == "siren" else 0.6,
                                            after=0.0 if kind == "siren" else 8.0)  # room for 4 long beeps
            on = None
            if kind == "horn" and rides and d(part, "horn_on_vehicle"):  # it honks from a vehicle passing by
                on, vp, t_cpa, speed, direction, idx, h = rides[int(unit(seed, part, "~ride") * len(rides))]
                t = calls.emission_grid(vp.t[0], vp.t[-1] + 8.0)
                path = Path(t, direction * speed * (t - t_cpa), vp.lateral, vp.dz + h - 0.6)
            em, det = (calls.siren if kind == "siren" else calls.horn)(part, d, path, t_cpa)
            name = f"{kind}_{det['pattern'] if kind == 'siren' else det['horn']}"
            _place(mix, em, med, d(part, level), None, {"kind": name, "class": kind, "name": part,
                   "speed_mps": round(speed, 3), "direction": direction, "lane": idx,
                   "source_distance_m": round(path.lateral, 3), "t_cpa": round(t_cpa, 3), "on_vehicle": on, **det})
    for i in range(_count(d, "n_distractor", duration_s)):
        part = f"distractor#{i}"
        kind, length = d(part, "distractor"), min(d(part, "distractor_s"), duration_s - 0.2)
        y, det = distract.distractor(kind, length, np.random.default_rng(d.rng_seed(part)), fs)
        dist, level = d(part, "distractor_m"), d(part, "distractor_db")
        top, _, _ = lafmax(y, fs, full_scale_db)
        i0 = int(d(part, "t_frac") * (duration_s - length) * fs)
        mix.add(i0, y * 10 ** ((level - top) / 20), {"kind": kind, "class": "other", "name": part,
                "source_distance_m": round(dist, 3), "length_s": round(length, 3), **det}, dist=dist)
    if d("civil", "civil_siren"):
        dist, level = d("civil", "civil_m"), d("civil", "civil_db")
        t_on = d("civil", "t_frac") * duration_s * 0.6
        y, det = distract.civil_siren(n, t_on, fs, np.random.default_rng(d.rng_seed("civil")), dist)
        top, _, _ = lafmax(y, fs, full_scale_db)
        mix.add(0, y * 10 ** ((level - top) / 20), {"kind": "siren_civil", "class": "siren", "name": "civil",
                "mode": "civil", "source_distance_m": round(dist, 3), "t_on": round(t_on, 3), **det}, dist=dist)
        labels["zone_siren_active"] = [[round(t_on, 3), duration_s]]
    _background(mix, d, n, fs, full_scale_db, mic_h)
    _microphone(mix, d, fs)
    return _finish(mix, labels, d)


def _background(mix: Mix, d: Draws, n: int, fs: int, fs_db: float, mic_h: float) -> None:
    layers = [textures.texture(f"texture#{j}", d, n, fs) for j in range(d("background", "texture_layers"))]
    for j, (y, det) in enumerate(layers):
        level = d(f"texture#{j}", "texture_db")
        mix.y += y * 10 ** ((level - laeq_db(y, fs, fs_db)) / 20)
        mix.sources.append({"class": "none", "name": f"texture#{j}", "laeq_db": round(level, 3), **det})
    for kind, fn in (("wind", textures.wind), ("rain", textures.rain)):
        if d(kind, kind):
            y = fn(kind, d, n, fs)
            level = d(kind, f"{kind}_db") + (1.5 * (mic_h - 2.0) if kind == "wind" else 0.0)  # windier up the post
            mix.y += y * 10 ** ((level - laeq_db(y, fs, fs_db)) / 20)
            mix.sources.append({"kind": kind, "class": "none", "name": kind, "laeq_db": round(level, 3)})


def _microphone(mix: Mix, d: Draws, fs: int) -> None:
    kind = d("mic", "mic_kind")
    info: dict = {"kind": kind}
    if kind == "mems":
        hp, pk_db, pk_hz = d("mic", "mems_hp_hz"), d("mic", "mems_port_db"), d("mic", "mems_port_hz")
        sos = signal.butter(2, hp, "highpass", fs=fs, output="sos")
        w0, a = 2 * math.pi * pk_hz / fs, 10 ** (pk_db / 40)
        alpha = math.sin(w0) / (2 * 2.0)
        b = [1 + alpha * a, -2 * math.cos(w0), 1 - alpha * a]
        den = [1 + alpha / a, -2 * math.cos(w0), 1 - alpha / a]
        peak = np.hstack([np.array(b) / den[0], np.array(den) / den[0]])
        mix.y = signal.sosfilt(np.vstack([sos, peak]), mix.y)
        info.update(hp_hz=round(hp, 1), port_db=round(pk_db, 2), port_hz=round(pk_hz, 1))
    else:
        lp = d("mic", "capsule_lp_hz")
        sos = np.vstack([signal.butter(1, 15.0, "highpass", fs=fs, output="sos"),
                         signal.butter(2, min(lp, 0.45 * fs), fs=fs, output="sos")])
        mix.y = signal.sosfilt(sos, mix.y)
        info["lp_hz"] = round(lp, 1)
    level = d("mic", "self_noise_db")
    y = textures.self_noise(np.random.default_rng(d.rng_seed("mic")), mix.y.size, fs)
    mix.y += y * 10 ** ((level - laeq_db(y, fs, mix.fs_db)) / 20)
    mix.sources.append({"kind": "mic_self_noise", "class": "none", "name": "mic", "laeq_db": round(level, 3)})
    mix.mic = info


def _finish(mix: Mix, labels: dict, d: Draws) -> Scene:
    y = mix.y
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    clipped = np.abs(y) >= 1.0
    audio = np.clip(y, -1.0, 1.0).astype(np.float32)
    cs = np.concatenate([[0], np.cumsum(clipped)])
    for s in mix.sources:
        if "t_peak" in s:
            a = max(0, int((s["t_peak"] - 1.0) * mix.fs))
            b = min(y.size, int((s["t_peak"] + 1.0) * mix.fs))
            s["overload"] = bool(cs[b] - cs[a] > 0)
    labels.update(sources=mix.sources, peak_fs=round(peak, 6), clipped_samples=int(clipped.sum()),
                  draws=d.log, microphone=getattr(mix, "mic", None))
    return Scene(audio=audio, fs=mix.fs, labels=labels, sources=mix.sources)
