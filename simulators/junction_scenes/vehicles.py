"""One vehicle of the approach: its story (through on green, or queue, wait and pull away), gearbox and rpm,
engine (modal bank), tyres, and its drawn level."""

from __future__ import annotations

import numpy as np

from simulators.junction_scenes import engines
from simulators.junction_scenes.propagate import CTRL
from simulators.junction_scenes.traffic import plan

KINDS = {  # kind: class, level key, straight pipe, motorcycle, heavy
    "exhaust_car": ("exhaust", None, True, False, False),
    "exhaust_moto": ("exhaust", None, True, True, False),
    "legal_car": ("other", "legal_car_db", False, False, False),
    "moto_legal": ("other", "moto_legal_db", False, True, False),
    "bus": ("other", "bus_db", False, False, True),
    "truck": ("other", "truck_db", False, False, True),
}


def level(d, part: str, kind: str) -> float:
    cls, key = KINDS[kind][:2]
    return d(part, "exhaust_db" if cls == "exhaust" else key)


def motion_draws(d, part: str, kind: str) -> dict:
    straight, moto, heavy = KINDS[kind][2:]
    m = {"v0": d(part, "speed_mps") * (0.7 if heavy else 1.0), "a_through": d(part, "through_accel_mps2"),
         "brake": d(part, "brake_mps2"), "v_max": d(part, "v_max_mps"), "react": d(part, "react_s")}
    hard = straight and d(part, "hard_launch")
    m["hard"] = hard
    m["accel"] = d(part, "hard_accel_mps2") if hard else d(part, "launch_accel_mps2") * (0.6 if heavy else 1.0)
    m["turn"] = None
    if d(part, "turn"):
        m["turn"] = {"side": d(part, "turn_side"), "after": d(part, "turn_after_m"),
                     "radius": d(part, "turn_radius_m")}
    return m


def engine_draws(d, part: str, kind: str, rng: np.random.Generator) -> dict:
    straight, moto, heavy = KINDS[kind][2:]
    if moto:
        layout = d(part, "moto_layout")
        cyl = {"single": 1, "parallel_twin": 2, "v_twin": 2, "triple": 3, "four": 4, "two_stroke": 1}[layout]
    else:
        layout, cyl = "inline", (6 if heavy else d(part, "car_cylinders"))
    angle = d(part, "twin_angle") if layout == "v_twin" else 0
    offs, strokes = engines.offsets(layout, cyl, angle)
    idle = d(part, "idle_rpm") * (1.3 if moto else 1.0) * (0.75 if heavy else 1.0)
    shift = d(part, "shift_rpm_hard") if straight else d(part, "shift_rpm_legal") * (0.6 if heavy else 1.0)
    shift = min(shift * (1.6 if moto else 1.0), 12000.0)
    shift = max(shift, 1.6 * idle)
    p = {"layout": layout, "cylinders": cyl, "offs": offs, "strokes": strokes, "idle": idle, "shift": shift,
         "step": d(part, "gear_step"), "u1": d(part, "v_per_krpm") * (0.8 if moto else 1.0) * (0.6 if heavy else 1),
         "jitter": d(part, "fire_jitter"), "misfire": d(part, "misfire_p"),
         "scatter": d(part, "fire_scatter") if straight else d(part, "legal_scatter")}
    p["launch_rpm"] = 0.55 * shift if straight else idle + 0.25 * (shift - idle)
    if straight:
        p.update(blips=d(part, "blips"), limiter_s=d(part, "limiter_s"), bounce_hz=d(part, "bounce_hz"),
                 rasp_db=d(part, "rasp_db"), rasp_hz=d(part, "rasp_hz"), rasp_decay_ms=d(part, "rasp_decay_ms"),
                 pop_per_s=d(part, "pop_per_s"), pop_db=d(part, "pop_db"),
                 tyre_db=d(part, "tyre_exhaust_db"))
    else:
        p.update(silencer_hz=d(part, "silencer_hz"), hum_hz=d(part, "hum_hz"), hum_db=d(part, "hum_db"),
                 tyre_db=d(part, "tyre_legal_db"), limiter_s=0.0)
    bal, width = d(part, "balance_hz"), d(part, "balance_oct")
    modes = []
    for j in range(d(part, "n_modes")):
        mp = f"{part}/mode{j}"
        f = d(mp, "mode_hz")
        q = d(mp, "pipe_q") if straight else d(mp, "damped_q")
        g_db = d(mp, "mode_db") - 8.686 * 0.5 * (np.log2(f / bal) / width) ** 2
        modes.append((f, q, float(10 ** (g_db / 20))))
    p["modes"] = modes
    p["balance_hz"], p["tyre_hz"], p["tyre_slope"] = bal, d(part, "tyre_hz"), d(part, "tyre_slope")
    return p


def build(d, part: str, kind: str, scene: dict, rng: np.random.Generator, t_line: float,
          role: tuple) -> dict | None:
    """The vehicle's motion, emitted signal (1 m reference, arbitrary scale) and label details."""
    straight = KINDS[kind][2]
    m = motion_draws(d, part, kind)
    e = engine_draws(d, part, kind, rng)
    r, t_when, t_go, x_at = role
    if t_go is not None:
        t_go += m["react"]
    mo = plan(r, t_when, m["v0"], m["a_through"], m["brake"], m["accel"], m["v_max"], x_at, t_go,
              scene["lane"], scene["src_h"], m["turn"], scene["duration"])
    if mo.v.size < CTRL // 2:  # less than half a second within reach inside the scene: not heard
        return None
    if not m["hard"]:
        e["limiter_s"] = 0.0
        e["blips"] = 0 if r != "queued" else e.get("blips", 0)
    rpm, thr, events = engines.rpm_track(mo.v, e, straight, mo.t_go, mo.t0, rng)
    fire_t, fire_a = engines.firings(rpm, thr, e["offs"], e["strokes"], e, rng)
    pop_t = engines.pops(rpm, thr, e["idle"], e["pop_per_s"], rng) if straight else np.zeros(0)
    fs = scene["fs"]
    n = int((mo.v.size - 1) / CTRL * fs) + 1
    sig = engines.engine(n, fs, fire_t, fire_a, pop_t, 10 ** (e.get("pop_db", 0.0) / 20), e, straight, rng)
    tyre = engines.tyres(n, fs, mo.v, e["tyre_hz"], e["tyre_slope"], rng)
    sig += tyre * (np.sqrt(np.mean(sig * sig)) * 10 ** (e["tyre_db"] / 20))
    fade = min(int(0.05 * fs), n // 4)
    sig[:fade] *= np.linspace(0, 1, fade)
    sig[n - fade:] *= np.linspace(1, 0, fade)
    details = {"role": mo.role, "t_line": round(t_line, 2), "t_stop": None if mo.t_stop is None else round(mo.t_stop, 2),
               "t_go": None if mo.t_go is None else round(mo.t_go, 2), "turn": m["turn"],
               "hard_launch": bool(m["hard"]), "layout": e["layout"], "cylinders": e["cylinders"],
               "strokes": e["strokes"], "rpm": [round(float(rpm.min()), 0), round(float(rpm.max()), 0)],
               "firings": int(fire_t.size), "misfires": int((fire_a == 0).sum()), "pops": int(pop_t.size),
               "modes_hz": [round(f, 1) for f, _, _ in e["modes"]], "modes_q": [round(q, 2) for _, q, _ in e["modes"]],
               "balance_hz": round(e["balance_hz"], 1), "tyre_hz": round(e["tyre_hz"], 1),
               "gear_events": events[:40], "speed_mps": round(float(mo.v.max()), 2)}
    return {"motion": mo, "sig": sig, "details": details}
