"""Engines by spectral-modelling synthesis: engine orders on an rpm track under a smooth spectral envelope, plus a
stochastic residual (STFT-filtered noise; rasp AM at the firing rate for straight pipes) and overrun pops.

Which orders are strong follows from the firing pattern: order m (in half crank orders for four-strokes, whole
orders for two-strokes) has the magnitude of the m-th Fourier coefficient of the cycle's firing impulses, with
per-cylinder angle spread and gain spread (firing irregularity) leaking energy into the orders between the firing
orders. Their amplitudes follow a drawn envelope: 2-4 formant-like log-Gaussian bumps (80 Hz-3 kHz) on a tilt,
so the balance is bass-heavy, mid-heavy or bright for any class; legal vehicles add a low-pass and keep few
orders."""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from simulators.boulevard_scenes.render import CTRL_HZ, Emitter, Path, Tonal

LAYOUTS = {"single": [0.0], "twin360": [0.0, 0.5], "twin270": [0.0, 0.375], "triple": [0.0, 1 / 3, 2 / 3],
           "four": [0.0, 0.25, 0.5, 0.75], "stroke2": [0.0]}
STRAIGHT = ("exhaust_car", "exhaust_moto")


def firing_angles(kind: str, d, part: str) -> tuple[list[float], int, str]:
    """(firing angles as fractions of the cycle, strokes, layout name)."""
    if kind in ("exhaust_moto", "moto_legal"):
        lay = d(part, "moto_layout")
        if lay == "vtwin":
            return [0.0, (360 + d(part, "vtwin_deg")) / 720], 4, lay
        return list(LAYOUTS[lay]), (2 if lay == "stroke2" else 4), lay
    if kind == "scooter":
        return [0.0], 2, "stroke2"
    n = d(part, "heavy_cylinders") if kind in ("bus", "truck", "sweeper") else d(part, "car_cylinders")
    if n == 8 and kind in STRAIGHT + ("legal_car",) and d(part, "crossplane"):
        bank = [0.0, 0.25, 0.375, 0.625]  # one bank of a cross-plane V8: 180-90-180-270 degree gaps
        return bank + [a + 0.125 for a in bank], 4, "v8_crossplane"
    return [j / n for j in range(n)], 4, f"{n}cyl"


def order_strengths(angles: list[float], spread: float, gain_spread: float, rng, m_max: int) -> np.ndarray:
    th = np.asarray(angles) + spread * rng.standard_normal(len(angles))
    g = np.clip(1 + gain_spread * rng.standard_normal(len(angles)), 0.2, None)
    m = np.arange(1, m_max + 1)[:, None]
    return np.abs((g[None, :] * np.exp(-2j * math.pi * m * th[None, :])).sum(axis=1)) / g.sum()


def envelope_db(f: np.ndarray, bumps: list[tuple[float, float, float]], tilt: float, lp_hz: float | None):
    x = np.log2(np.maximum(f, 1.0) / 100.0)
    e = tilt * x
    for fc, octv, gain in bumps:
        e = e + gain * np.exp(-0.5 * ((x - math.log2(fc / 100.0)) / (octv / 2)) ** 2)
    if lp_hz is not None:  # a legal silencer: first-order low-pass
        e = e - 10 * np.log10(1 + (f / lp_hz) ** 2)
    return e


def rpm_story(story: str, t: np.ndarray, tc: float, base: float, rise: float, drop: float, rate: float,
              blip_s: float, idle: float, top_cap: float) -> tuple[np.ndarray, np.ndarray]:
    """(rpm, throttle 0-1) on the emission grid; the story is centred at tc."""
    n, dt = t.size, 1.0 / CTRL_HZ
    rpm, thr = np.empty(n), np.empty(n)
    top = min(base * rise, top_cap)
    r, shut = (top if story == "overrun" else base), 0.0
    for i, ti in enumerate(t):
        u = ti - tc
        if story == "cruise":
            r, th = base * (1 + 0.03 * math.sin(0.7 * ti)), 0.5
        elif story in ("gears", "wheelie"):
            k = 2.5 if story == "wheelie" else 1.0
            if u < -4.0:
                r, th = base, 0.5
            elif shut > 0:
                shut -= dt
                th = 0.0
            else:
                r += rate * k * dt * (1 - 0.4 * (r - base) / max(top - base, 1.0))
                th = 1.0
                if r >= top:
                    r, shut = top * drop, 0.2
        elif story == "blips":
            ph = (u % blip_s) / blip_s
            th = 1.0 if ph < 0.12 else 0.0
            r = idle + (top - idle) * (ph / 0.12 if ph < 0.12 else math.exp(-(ph - 0.12) * blip_s / 0.35))
        else:  # overrun: a pull, then the throttle shuts and the engine brakes with pops
            if u < 0:
                r, th = min(top, r + rate * dt), 1.0
            else:
                r, th = max(idle * 1.1, r - 0.8 * rate * dt), 0.0
        rpm[i], thr[i] = r, th
    return signal.savgol_filter(rpm, 9, 2) if n > 9 else rpm, thr


def pop_clicks(t, thr, rpm, idle, rate, pop_db, rng, fs) -> list[tuple[float, np.ndarray]]:
    """Overrun crackle: Poisson pops while the throttle is shut above idle, short decaying filtered impulses."""
    on = (thr < 0.2) & (rpm > 1.25 * idle)
    lam = rate * on / CTRL_HZ
    hits = np.flatnonzero(rng.random(t.size) < lam)
    out = []
    for i in hits:
        ln = int(fs * rng.uniform(0.003, 0.015))
        w = rng.standard_normal(ln) * np.exp(-np.arange(ln) / (ln / 4))
        f = rng.uniform(700.0, 4500.0)
        b, a = signal.iirpeak(f, 2.0, fs)
        w = signal.lfilter(b, a, w)
        out.append((float(t[i] + rng.uniform(0, 1 / CTRL_HZ)), 10 ** (pop_db / 20) * w / np.max(np.abs(w))))
    return out


def vehicle(kind: str, part: str, d, path: Path, t_cpa: float, fs: int) -> tuple[Emitter, dict]:
    """The emitter of one vehicle and its kind details; its level is scaled later (the label's truth)."""
    rng = np.random.default_rng(d.rng_seed(part))
    straight = kind in STRAIGHT
    angles, strokes, layout = firing_angles(kind, d, part)
    spread = d(part, "firing_spread") / (1 if straight else 3)
    gspread = d(part, "cyl_gain_spread") / (1 if straight else 2)
    moto = kind in ("exhaust_moto", "moto_legal")
    if kind in ("bus", "truck", "sweeper"):
        base, cap, idle = d(part, "heavy_rpm"), 2300.0, 650.0
    elif kind == "scooter" or layout == "stroke2":
        base, cap, idle = d(part, "scooter_rpm"), 11000.0, 1800.0
    elif moto:
        base, cap, idle = d(part, "moto_rpm"), 13000.0, 1200.0
    else:
        base, cap, idle = d(part, "car_rpm"), 7500.0, 800.0
    story = d(part, "story")
    if story == "wheelie" and not moto:
        story = "gears"
    if not straight and story in ("blips", "overrun", "wheelie"):
        story = "cruise"  # legal vehicles cruise or pull gently through the gears
    rise = d(part, "rpm_rise") if straight else 1 + 0.3 * (d(part, "rpm_rise") - 1)
    rpm, thr = rpm_story(story, path.t, t_cpa + d(part, "story_offset_s"), base, rise, d(part, "gear_drop"),
                         d(part, "rpm_rate"), d(part, "blip_s"), idle, cap)
    f0 = rpm / 60.0 / (2.0 if strokes == 4 else 1.0)
    nb = d(part, "bumps")
    bumps = [(d(f"{part}/bump{j}", "bump_hz"), d(f"{part}/bump{j}", "bump_oct"), d(f"{part}/bump{j}", "bump_db"))
             for j in range(nb)]
    tilt = d(part, "envelope_tilt_db_oct")
    lp = None if straight else d(part, "legal_lp_hz")
    top_hz = d(part, "max_order_hz") if straight else 2500.0
    m_max = max(2, int(top_hz / max(float(f0.max()), 1.0)))
    cm = order_strengths(angles, spread, gspread, rng, min(m_max, 400))
    fmean = float(np.median(f0))
    score = cm * 10 ** (envelope_db(np.arange(1, cm.size + 1) * fmean, bumps, tilt, lp) / 20)
    keep = np.argsort(score)[::-1][: (80 if straight else d(part, "legal_orders"))]
    keep = np.sort(keep[score[keep] > 1e-3 * score.max()])
    mults = (keep + 1).astype(float)
    thr_gain = 10 ** (d(part, "throttle_db") * (thr - 0.5) / 20)
    amps = np.array([cm[k] * 10 ** (envelope_db(mults[j] * f0, bumps, tilt, lp) / 20) * thr_gain
                     for j, k in enumerate(keep)])
    em = Emitter(path=path, seed=d.rng_seed(part + "/noise"), tonal=[Tonal(f0, mults, amps)])
    tyre_hz = d(part, "tyre_hz")
    grid = np.geomspace(50.0, 8000.0, 64)
    peak_db = float(envelope_db(grid, bumps, tilt - 1.5, lp).max())  # the tyre band is set re the envelope's peak
    tyre_rel = 10 ** (((d(part, "tyre_db") if straight else d(part, "legal_tyre_db")) + peak_db) / 20)
    t_grid, thr_n = path.t, 10 ** (d(part, "throttle_db") * (thr - 0.5) / 20)

    def noise(tau: np.ndarray, fe: np.ndarray) -> np.ndarray:
        eng = 10 ** (envelope_db(fe, bumps, tilt - 1.5, lp) / 20) * np.interp(tau, t_grid, thr_n)[:, None]
        tyre = tyre_rel * np.exp(-0.5 * (np.log2(fe / tyre_hz) / 0.6) ** 2)
        return np.sqrt(eng**2 + tyre**2)

    em.noise = noise
    details = {"layout": layout, "cylinders": len(angles) if layout != "v8_crossplane" else 8, "strokes": strokes,
               "story": story, "rpm": [round(float(rpm.min())), round(float(rpm.max()))],
               "f0_hz": round(float(base / 60 * len(angles) / (2 if strokes == 4 else 1)), 1),
               "orders": [float(m / (2 if strokes == 4 else 1)) for m in mults[:12]], "firings_per_cycle": len(angles),
               "envelope_bumps_hz": [round(b[0], 1) for b in bumps], "t_cpa": round(t_cpa, 3)}
    if straight:
        depth, sharp = d(part, "rasp_depth"), d(part, "rasp_sharpness")
        ff = rpm / 60.0 * len(angles) / (2.0 if strokes == 4 else 1.0)
        phase = 2 * math.pi * np.concatenate([[0.0], np.cumsum((ff[1:] + ff[:-1]) / 2) / CTRL_HZ])
        norm = float(np.mean(((1 + np.cos(np.linspace(0, 2 * math.pi, 256, endpoint=False))) / 2) ** sharp))
        em.am = lambda tau: (1 - depth) + depth * ((1 + np.cos(np.interp(tau, t_grid, phase))) / 2) ** sharp / norm
        rate = d(part, "pop_per_s")
        em.clicks = pop_clicks(path.t, thr, rpm, idle, rate, d(part, "pop_db"), rng, fs)
        details.update(rasp_depth=round(depth, 3), pops=len(em.clicks))
    details["harmonic_db"] = d(part, "harmonic_db") if straight else d(part, "legal_harmonic_db")
    return em, details
