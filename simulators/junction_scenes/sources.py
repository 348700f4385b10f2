"""Point sources of a junction scene: each is synthesised once, propagated to the microphone and to a lane 7.5 m
from its path (the level truth), scaled so that the 7.5 m rendering's LAFmax is the drawn level, and mixed."""

from __future__ import annotations

import math
import zlib

import numpy as np

from simulators.junction_scenes import calls, meter, vehicles
from simulators.junction_scenes.propagate import CTRL, C, Path, render
from simulators.junction_scenes.traffic import plan, queue_roles

PAD_S = 6.0


def _rng(ctx: dict, part: str) -> np.random.Generator:
    return np.random.default_rng([ctx["seed"], zlib.crc32(part.encode()), 0x4A4E4354])


def _add(ctx: dict, mix: np.ndarray, start: int, y: np.ndarray) -> float:
    a, b = max(start, 0), min(start + y.size, ctx["n"])
    if b <= a:
        return 0.0
    seg = y[a - start:b - start]
    mix[a:b] += seg
    return float(np.max(np.abs(seg)))


def place(ctx: dict, mix: np.ndarray, sources: list, sig: np.ndarray, path: Path, level_7p5: float,
          info: dict) -> bool:
    """Propagate, scale by the 7.5 m truth, mix and label; False when the source's own maximum at the
    microphone falls outside the scene (then it is left out)."""
    fs, pad = ctx["fs"], int(PAD_S * ctx["fs"])
    ext = ctx["n"] + 2 * pad
    args = (ctx["mic_h"], ctx["air"], ctx["sigma"])
    a_m, y_m = render(sig, fs, path, *args, ctx["screen"], ext, -PAD_S)
    a_t, y_t = render(sig, fs, path.shifted(7.5 - ctx["lane"]), *args, None, ext, -PAD_S)
    if y_m.size == 0 or y_t.size == 0 or not np.any(y_t):
        return False
    g = 10 ** ((level_7p5 - meter.lafmax(y_t, a_t - pad, fs, ctx["fsdb"])) / 20)
    y_m *= g
    st = meter.event_stats(y_m, a_m - pad, fs, ctx["fsdb"], 0.0, ctx["duration"])
    if not 0.0 <= st["t_peak"] <= ctx["duration"]:
        return False
    peak = _add(ctx, mix, a_m - pad, y_m)
    sources.append({**info, "t_peak": st["t_peak"], "t_start": st["t_start"], "t_end": st["t_end"],
                    "lafmax_7p5_db": round(level_7p5, 3), "lafmax_mic_db": round(st["lafmax"], 3),
                    "source_distance_m": round(path.closest_m(), 3), "laf_trace": st["laf_trace"],
                    "laf_trace_t0": st["laf_trace_t0"], "peak_fs_alone": round(peak, 6), "overload": False})
    return True


def place_at_mic(ctx: dict, mix: np.ndarray, sources: list, x: np.ndarray, start: int, level_mic: float,
                 dist: float, info: dict) -> None:
    """A source scaled at the microphone (stationary distractors, far sirens): its 7.5 m level is the
    microphone level plus 20 log10(d / 7.5)."""
    fs = ctx["fs"]
    x = x * 10 ** ((level_mic - meter.lafmax(x, start, fs, ctx["fsdb"])) / 20)
    st = meter.event_stats(x, start, fs, ctx["fsdb"], 0.0, ctx["duration"])
    peak = _add(ctx, mix, start, x)
    sources.append({**info, "t_peak": st["t_peak"], "t_start": st["t_start"], "t_end": st["t_end"],
                    "lafmax_7p5_db": round(level_mic + 20 * math.log10(dist / 7.5), 3),
                    "lafmax_mic_db": round(st["lafmax"], 3), "source_distance_m": round(dist, 3),
                    "laf_trace": st["laf_trace"], "laf_trace_t0": st["laf_trace_t0"], "peak_fs_alone": round(peak, 6),
                    "overload": False})


def vehicle_sources(ctx: dict, counts: dict, mix: np.ndarray, sources: list) -> None:
    d, dur = ctx["d"], ctx["duration"]
    fleet = []
    for kind in vehicles.KINDS:
        for i in range(counts["n_" + kind]):
            part = f"{kind}#{i}"
            t_pole = -3.0 + d(part, "arrive_frac") * (dur + 5.0)
            v0 = vehicles.motion_draws(d, part, kind)["v0"]
            fleet.append((kind, part, t_pole + ctx["stop_x"] / v0))  # when it would reach the stop line
    roles = queue_roles([t for *_, t in fleet], ctx["light"], ctx["headway"], ctx["gap"], ctx["stop_x"])
    for (kind, part, t_line), role in zip(fleet, roles, strict=True):
        lvl = vehicles.level(d, part, kind)
        v = vehicles.build(d, part, kind, ctx, _rng(ctx, part), t_line, role)
        if v is None:
            continue
        info = {"kind": kind, "class": vehicles.KINDS[kind][0], "name": part, **v["details"]}
        place(ctx, mix, sources, v["sig"], v["motion"].path, lvl, info)


def _green_near(ctx: dict, t: float) -> float:
    starts = [a for a, _ in ctx["greens"] if 0.0 <= a <= ctx["duration"]]
    return min(starts, key=lambda a: abs(a - t)) if starts else t


def horn_source(ctx: dict, part: str, mix: np.ndarray, sources: list) -> None:
    d, fs = ctx["d"], ctx["fs"]
    rng = _rng(ctx, part)
    kind = d(part, "horn_kind")
    f_lo = {"two_tone": "horn_f_hz", "single": "horn_f_hz", "air": "air_horn_f_hz", "scooter": "scooter_horn_hz"}
    f0 = d(part, f_lo[kind])
    ratio = d(part, "horn_ratio") if kind == "two_tone" else 1.0
    t_h = _green_near(ctx, d(part, "horn_frac") * ctx["duration"]) + d(part, "horn_delay_s")
    beeps, t = [], 0.3
    for _ in range(d(part, "horn_beeps")):
        ln = d(part, "horn_beep_s") * rng.uniform(0.6, 1.0)
        beeps.append((t, t + ln))
        t += ln + d(part, "horn_gap_s") * rng.uniform(0.7, 1.3)
    length = t + 0.6
    n = int(length * fs)
    sig = calls.horn(n, fs, kind, f0, ratio, beeps, d(part, "horn_formant_hz"), d(part, "horn_slope"),
                     d(part, "horn_even_db"), rng, d(part, "air_horn_tones") if kind == "air" else 1)
    k = np.arange(int(length * CTRL) + 2) / CTRL
    moving = d(part, "horn_moving")
    x0 = ctx["stop_x"] - d(part, "horn_queue") * ctx["gap"]
    speed = d(part, "horn_speed_mps") if moving else 0.0
    path = Path(t_h - 0.3, x0 + speed * k, np.full(k.size, ctx["lane"]), ctx["src_h"] + 0.3)
    info = {"kind": f"horn_{kind}", "class": "horn", "name": part, "f_hz": [round(f0, 2), round(f0 * ratio, 2)],
            "beeps": len(beeps), "moving": bool(moving), "speed_mps": round(speed, 2)}
    place(ctx, mix, sources, sig, path, d(part, "horn_db"), info)


def siren_source(ctx: dict, part: str, mix: np.ndarray, sources: list) -> None:
    d, fs = ctx["d"], ctx["fs"]
    t_line = d(part, "siren_frac") * ctx["duration"]
    v0 = d(part, "siren_speed_mps")
    stops = d(part, "siren_stops") and not ctx["light"].is_green(t_line)
    mo = plan("queued" if stops else "through", t_line, v0, 0.0, 3.0, 2.5, v0, ctx["stop_x"],
              t_line + 2.0 + 2.0 * d(part, "react_s") if stops else None, ctx["lane"], 1.6, None, ctx["duration"])
    pattern = d(part, "siren_pattern")
    period = calls.SIREN_BASE_S[pattern] * d(part, "siren_rate")
    t_on = t_line + d(part, "siren_start_s")
    t_off = t_on + d(part, "siren_len_s")
    n = int((mo.v.size - 1) / CTRL * fs) + 1
    lo = d(part, "siren_lo_hz")
    sig = calls.siren(n, fs, t_on - mo.t0, t_off - mo.t0, pattern, lo, d(part, "siren_span"),
                      d(part, "two_tone_ratio"), period, d(part, "siren_wave"), d(part, "siren_drive"),
                      d(part, "speaker_hz"))
    if not np.any(sig):
        return
    info = {"kind": f"siren_{pattern}", "class": "siren", "name": part, "pattern": pattern, "mode": "passing",
            "stops_at_red": bool(stops), "f_lo_hz": round(lo, 2), "cycle_s": round(period, 3),
            "siren_on": [round(t_on, 2), round(t_off, 2)], "speed_mps": round(v0, 2)}
    place(ctx, mix, sources, sig, mo.path, d(part, "siren_db"), info)


def civil_source(ctx: dict, part: str, mix: np.ndarray, sources: list) -> list:
    d, fs, n = ctx["d"], ctx["fs"], ctx["n"]
    dist = d(part, "civil_m")
    t_on = d(part, "siren_frac") * 0.6 * ctx["duration"]
    length = ctx["duration"] - t_on + 1.0
    m = int(length * fs)
    sig = calls.civil(m, fs, d(part, "civil_hz"), d(part, "civil_period_s"), _rng(ctx, part))
    fade = int(2.0 * fs)
    sig[:fade] *= np.linspace(0, 1, fade) if m > fade else 1.0
    k = np.arange(int(length * CTRL) + 2)
    path = Path(t_on - dist / C, np.full(k.size, 0.6 * dist), np.full(k.size, 0.8 * dist), 20.0)
    a, y = render(sig, fs, path, ctx["mic_h"], ctx["air"], ctx["sigma"], None, n)
    if y.size == 0:
        return []
    info = {"kind": "siren_civil", "class": "siren", "name": part, "pattern": "civil", "mode": "civil",
            "f_hz": round(d(part, "civil_hz"), 2)}
    place_at_mic(ctx, mix, sources, y, a, d(part, "civil_db"), dist, info)
    return [[round(max(t_on, 0.0), 2), round(ctx["duration"], 2)]]


def stationary_source(ctx: dict, part: str, kind: str, mix: np.ndarray, sources: list) -> None:
    d, fs, n = ctx["d"], ctx["fs"], ctx["n"]
    rng = _rng(ctx, part)
    if kind == "bell":
        t0 = d(part, "bell_frac") * max(ctx["duration"] - 1.0, 0.1)
        x = calls.bell(n, fs, d(part, "bell_hz"), d(part, "bell_rings"), t0, rng)
        lvl, dist, extra = d(part, "bell_db"), d(part, "bell_m"), {}
    elif kind == "aps":
        walk = [(b, b + 8.0) for a, b in ctx["greens"]]  # pedestrians cross our street on its red
        x = calls.aps(n, fs, d(part, "aps_kind"), d(part, "aps_hz"), d(part, "aps_rate_hz"), walk, rng)
        lvl, dist, extra = d(part, "aps_db"), d(part, "aps_m"), {"aps": d(part, "aps_kind")}
    elif kind == "music":
        x = calls.music(n, fs, d(part, "music_bpm"), d(part, "music_root_hz"), rng)
        lvl, dist, extra = d(part, "music_db"), d(part, "music_m"), {}
    else:
        x = calls.thumps(n, fs, d(part, "thump_per_s"), d(part, "thump_hz"), rng)
        lvl, dist, extra = d(part, "thump_db"), d(part, "thump_m"), {}
    if not np.any(x):
        return
    place_at_mic(ctx, mix, sources, x, 0, lvl, dist, {"kind": kind, "class": "other", "name": part, **extra})
