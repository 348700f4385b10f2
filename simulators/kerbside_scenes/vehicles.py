"""Road vehicles of the kerbside family: what each kind emits while it drives along the lane.

Exhausts (class ``exhaust``): straight-pipe cars (3-8 cylinders, even firing) and motorcycles (single, parallel
twin with a 270 degree crank, V-twin with uneven 360 +/- bank-angle firing, triple, inline four at 6-12 krpm).
Everything else is class ``other``: the same engines behind legal silencers, two-stroke scooters (one firing per
revolution, an expansion chamber, a silencer), electric cars (tyres, motor whine, an AVAS hum below 30 km/h),
buses and trucks (six-cylinder diesels; a truck may use its compression-release engine brake: sharp pulses
with the fuel off), trams (rail rumble, traction whine, wheel squeal: a narrow tone) and cars playing
bass-heavy music (kick drum and bass line heard through the body).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from simulators.kerbside_scenes.engines import (
    FIRING,
    Motion,
    engine,
    interp_ctrl,
    math_tone,
    motion,
    rms,
    rpm_track,
    tyres,
)

EXHAUST = ("exhaust_car", "exhaust_moto")
OTHER = ("legal_car", "moto_legal", "scooter", "ev_car", "bus", "truck", "tram", "music_car")
LEVEL_KEY = {"exhaust_car": None, "exhaust_moto": None, "legal_car": "legal_car_db", "moto_legal": "moto_legal_db",
             "scooter": "scooter_db", "ev_car": "ev_db", "bus": "bus_db", "truck": "truck_db", "tram": "tram_db",
             "music_car": "music_db"}


def level_db(dr, part: str, kind: str) -> float:
    key = LEVEL_KEY[kind]
    if key:
        return dr(part, key)
    return dr(part, "near_limit_db") if dr(part, "near_limit") else dr(part, "exhaust_db")


def _moto_offsets(dr, part: str) -> tuple[list[float], str]:
    layout = dr(part, "moto_layout")
    if layout == "v_twin":
        ang = dr(part, "v_twin_deg")
        return [0.0, (360 + ang) / 720], f"v_twin_{ang}"
    return FIRING[layout], layout


def _mix(a: np.ndarray, b: np.ndarray, b_rel_db: float) -> np.ndarray:
    """a + b with b scaled to ``b_rel_db`` relative to a (rms)."""
    return a + b * (10 ** (b_rel_db / 20) * rms(a) / max(rms(b), 1e-12))


def vehicle(dr, part: str, kind: str, fs: int, t_cpa: float) -> tuple[np.ndarray, Motion, float, dict]:
    """Emitted signal (arbitrary scale), motion, source height and kind-specific labels of one vehicle."""
    heavy = kind in ("bus", "truck", "tram")
    moto = kind in ("exhaust_moto", "moto_legal", "scooter")
    v = dr(part, "speed_mps") * (0.6 if heavy else 1.0)
    direction = dr(part, "direction")
    story = dr(part, "story") if kind in ("exhaust_car", "exhaust_moto", "legal_car", "moto_legal", "scooter",
                                          "bus", "music_car") else "cruise"
    if heavy and story in ("blips", "overrun"):
        story = "cruise"
    m = motion(dr, part, t_cpa, v, direction, story, accel_k=1.4 if moto else (0.5 if heavy else 1.0))
    n = int(round((m.x.size - 1) / 1000 * fs))
    h = dr(part, "src_height_m") + (0.8 if heavy else 0.0)
    info: dict = {"speed_mps": round(v, 3), "story": story, "direction": direction}
    if kind in ("ev_car", "tram"):
        sig = (_ev if kind == "ev_car" else _tram)(dr, part, fs, m, n, info)
        return sig, m, h, info
    strokes, straight = 4, kind in EXHAUST
    if kind in ("exhaust_car", "legal_car", "music_car"):
        cyl = dr(part, "car_cylinders")
        offsets, layout = [j / cyl for j in range(cyl)], f"{cyl}_cyl"
        base, idle, rate = dr(part, "car_rpm"), dr(part, "idle_rpm"), dr(part, "rpm_rate")
    elif kind in ("exhaust_moto", "moto_legal"):
        offsets, layout = _moto_offsets(dr, part)
        top = dr(part, "moto_rpm")
        base, idle, rate = top / dr(part, "rpm_rise"), dr(part, "idle_rpm") * 1.4, dr(part, "rpm_rate") * 2.5
    elif kind == "scooter":
        offsets, layout, strokes = [0.0], "single_2_stroke", 2
        base = dr(part, "stroke2_rpm") / 1.3
        idle, rate = 1800.0, dr(part, "rpm_rate") * 2.5
    else:  # bus, truck: inline-six diesel
        offsets, layout = [j / 6 for j in range(6)], "6_cyl_diesel"
        base, idle, rate = dr(part, "heavy_rpm"), 650.0, 400.0
    rpm, thr = rpm_track(dr, part, m, base, idle, rate)
    if kind in ("legal_car", "music_car", "bus", "truck"):
        thr = np.minimum(thr, 0.6)
    brake = kind == "truck" and dr(part, "engine_brake")
    if brake:
        thr = np.zeros_like(thr)
    eng, einfo = engine(dr, part, fs, n, rpm, thr, offsets, strokes, straight, brake=brake)
    tyre = tyres(dr, part, fs, m.speed, n)
    if straight:
        sig = _mix(eng, tyre, dr(part, "tyre_db"))
    else:
        sig = _mix(tyre, eng, dr(part, "legal_engine_db") + (12.0 if kind == "scooter" else 0.0)
                   + (6.0 if brake else 0.0))
    if kind == "music_car":
        sig = _mix(sig, _music(dr, part, fs, n), 10.0)
    info.update(einfo, layout=layout, cylinders=len(offsets), strokes=strokes,
                rpm=[round(float(np.min(rpm)), 1), round(float(np.max(rpm)), 1)],
                f0_hz=round(float(base) / 60 * len(offsets) / (strokes / 2), 2), engine_brake=bool(brake))
    return sig, m, h, info


def _ev(dr, part: str, fs: int, m: Motion, n: int, info: dict) -> np.ndarray:
    tyre = tyres(dr, part, fs, m.speed, n)
    sp = interp_ctrl(m.speed, n, fs)
    k = dr(part, "ev_whine_hz")
    whine = math_tone(k * sp, fs) + 0.4 * math_tone(3 * k * sp, fs)
    avas = (math_tone(np.full(n, 420.0), fs) + 0.6 * math_tone(np.full(n, 845.0), fs)) * (sp < 8.3)
    info.update(whine_hz_per_mps=k)
    return _mix(_mix(tyre, whine, -14.0), avas, -12.0)


def _tram(dr, part: str, fs: int, m: Motion, n: int, info: dict) -> np.ndarray:
    rng = dr.rng(part + "/tram")
    sp = interp_ctrl(m.speed, n, fs)
    wheel = sp / 2.0  # wheel revolutions per second (0.64 m radius)
    rumble = signal.sosfilt(signal.butter(2, 300, fs=fs, output="sos"), rng.standard_normal(n))
    rumble *= 1 + 0.5 * math_tone(wheel, fs)
    whine = math_tone(55 * sp, fs) + 0.5 * math_tone(110 * sp, fs)
    sig = _mix(rumble, whine, -10.0)
    squeal = dr(part, "squeal")
    info.update(squeal=bool(squeal))
    if squeal:
        f0 = dr(part, "squeal_hz")
        t = np.arange(n) / fs
        mid = m.t_cpa - m.t0 + rng.uniform(-2.0, 2.0)
        span = rng.uniform(1.5, 4.0)
        env = np.exp(-0.5 * ((t - mid) / (span / 2)) ** 4) * (0.7 + 0.3 * np.sin(2 * np.pi * rng.uniform(2, 6) * t))
        tone = math_tone(f0 * (1 + 0.01 * np.sin(2 * np.pi * 0.7 * t)), fs) * env
        sig = _mix(sig, tone, rng.uniform(0.0, 10.0))
        info.update(squeal_hz=round(f0, 1))
    return sig


def _music(dr, part: str, fs: int, n: int) -> np.ndarray:
    """Kick drum (a pitch-dropping sine) on every beat and a low bass line, low-passed by the car body."""
    rng = dr.rng(part + "/music")
    beat = 60.0 / dr(part, "bpm")
    t = np.arange(n) / fs
    tb = np.mod(t, beat)
    kick = np.sin(2 * np.pi * (50 * tb + 60 * 0.03 * (1 - np.exp(-tb / 0.03)))) * np.exp(-tb / 0.18)
    notes = rng.uniform(40, 90, int(n / fs / beat) + 2)[(t / beat).astype(int)]
    bass = np.sign(np.sin(2 * np.pi * np.cumsum(notes) / fs)) * 0.5
    body = signal.sosfilt(signal.butter(4, 180, fs=fs, output="sos"), kick + bass)
    return body.astype(np.float32)
