"""Engines by modal synthesis: an excitation train (one impulse per firing, integrated from an rpm track)
drives a bank of 3-8 damped second-order resonators (exhaust pipe, silencer chambers, body panels) rendered with
``scipy.signal.lfilter``. Straight pipes: light damping, sharp excitations with per-firing scatter, a raspy
firing-gated broadband part, overrun pops, rev-limiter bounce. Legal: a silencer low-pass on the excitation,
heavy damping, an intake/mechanical hum mode. Tyre/road noise is synthesised per vehicle from its speed."""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

from simulators.junction_scenes.propagate import CTRL

LAYOUTS = {  # firing offsets in cycle fractions, strokes
    "single": ([0.0], 4), "parallel_twin": ([0.0, 270 / 720], 4), "triple": ([0.0, 1 / 3, 2 / 3], 4),
    "four": ([0.0, 0.25, 0.5, 0.75], 4), "two_stroke": ([0.0], 2),
}


def offsets(layout: str, cylinders: int, twin_angle: float) -> tuple[list[float], int]:
    if layout == "v_twin":
        return [0.0, (360 + twin_angle) / 720], 4
    if layout in LAYOUTS:
        return LAYOUTS[layout]
    return [i / cylinders for i in range(cylinders)], 4


def rpm_track(v: np.ndarray, p: dict, straight: bool, t_go: float | None, t0: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list]:
    """rpm and throttle (0-1) at the control rate from the speed track by a gearbox model: clutch slip at
    launch, upshifts at the shift rpm (throttle shut 0.25 s), rev-limiter bounce, downshifts when slowing,
    rev blips while waiting at red."""
    n = v.size
    rpm, thr = np.empty(n), np.empty(n)
    acc = np.gradient(v) * CTRL
    idle, shift, u1, step = p["idle"], p["shift"], p["u1"], p["step"]
    gear, shift_left, lim_left = 1, 0.0, p.get("limiter_s", 0.0)
    while gear < 6 and 1000.0 * v[0] / (u1 * step ** (gear - 1)) > shift:  # already rolling: the right gear
        gear += 1
    events = []
    for i in range(n):
        t = t0 + i / CTRL
        if v[i] < 0.3:
            rpm[i], thr[i], gear = idle, 0.12, 1
            continue
        rg = 1000.0 * v[i] / (u1 * step ** (gear - 1))
        if rg > shift and gear < 6:
            if straight and gear == 1 and lim_left > 0 and acc[i] > 0.15 and t_go is not None and t - t_go < 8:
                lim_left -= 1 / CTRL
                saw = (t * p["bounce_hz"]) % 1.0
                rpm[i] = shift * (1.0 - 0.06 * saw)
                thr[i] = 1.0 if saw > 0.35 else 0.0
                continue
            gear += 1
            shift_left = 0.25
            events.append(["shift", round(float(t), 2)])
            rg /= step
            while gear < 6 and rg > shift:  # a jump of speed (window start): skip to the right gear
                gear += 1
                rg /= step
        elif acc[i] < -0.3 and rg < 1.4 * idle and gear > 1:
            gear -= 1
            rg *= step
        r = max(rg, idle)
        if t_go is not None and 0 <= t - t_go < 1.2 and gear == 1:  # clutch slip while pulling away
            r = max(r, p["launch_rpm"])
        rpm[i] = r
        if shift_left > 0:
            shift_left -= 1 / CTRL
            thr[i] = 0.0
        elif acc[i] > 0.2:
            thr[i] = min(1.0, 0.45 + 0.55 * acc[i] / 3.0) if straight else min(0.8, 0.3 + 0.5 * acc[i] / 2.5)
        elif acc[i] < -0.3:
            thr[i] = 0.0
        else:
            thr[i] = 0.3
    # rev blips while standing (straight pipes waiting at red)
    still = np.nonzero(v < 0.3)[0]
    if p.get("blips", 0) and still.size > CTRL:
        for c in np.linspace(still[0], still[-1], p["blips"] + 2)[1:-1].astype(int):
            peak = idle + (shift - idle) * rng.uniform(0.4, 0.9)
            k = np.arange(c, min(c + CTRL, n))
            k = k[v[k] < 0.3]
            tt = (k - c) / CTRL
            shape = np.where(tt < 0.15, tt / 0.15, np.exp(-(tt - 0.15) / 0.18))
            rpm[k] = np.maximum(rpm[k], idle + (peak - idle) * shape)
            thr[k] = np.where(tt < 0.15, 1.0, 0.0)
            events.append(["blip", round(float(t0 + c / CTRL), 2)])
    return rpm, thr, events


def firings(rpm: np.ndarray, thr: np.ndarray, offs: list[float], strokes: int, p: dict,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Firing times (s from the track start) and amplitudes."""
    cps = rpm / 60.0 / (strokes / 2.0)  # engine cycles per second
    tau = np.arange(rpm.size) / CTRL
    phi = np.concatenate([[0.0], np.cumsum(0.5 * (cps[1:] + cps[:-1]) / CTRL)])
    m = np.arange(int(phi[-1]) + 1)
    targets = np.sort((m[:, None] + np.asarray(offs)[None, :]).ravel())
    targets = targets[targets < phi[-1]]
    t = np.interp(targets, phi, tau)
    interval = 1.0 / np.maximum(np.interp(t, tau, cps) * len(offs), 1e-3)
    t = t + p["jitter"] * interval * rng.standard_normal(t.size)
    r, th = np.interp(t, tau, rpm), np.interp(t, tau, thr)
    amp = (0.15 + 0.85 * th) * (r / 3000.0) ** 0.7 * np.exp(p["scatter"] * rng.standard_normal(t.size))
    amp[rng.random(t.size) < p["misfire"]] = 0.0
    return t, amp


def pops(rpm: np.ndarray, thr: np.ndarray, idle: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Overrun pop times (s): bursts of 1-4 backfires while the throttle is shut above idle."""
    cand = np.nonzero((thr < 0.05) & (rpm > 1.3 * idle))[0]
    hits = cand[rng.random(cand.size) < rate / CTRL]
    out = []
    for h in hits:
        t = h / CTRL + rng.uniform(0, 1 / CTRL)
        for _ in range(int(rng.integers(1, 5))):
            out.append(t)
            t += rng.uniform(0.002, 0.012)
    return np.asarray(out)


def resonator(x: np.ndarray, f: float, q: float, fs: int) -> np.ndarray:
    r = math.exp(-math.pi * f / q / fs)
    th = 2 * math.pi * f / fs
    b0 = (1 - r) * math.sqrt(1 + r * r - 2 * r * math.cos(2 * th))
    return signal.lfilter([b0], [1.0, -2 * r * math.cos(th), r * r], x)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x * x))) + 1e-20


def engine(n: int, fs: int, fire_t: np.ndarray, fire_a: np.ndarray, pop_t: np.ndarray, pop_gain: float,
           p: dict, straight: bool, rng: np.random.Generator) -> np.ndarray:
    exc = np.zeros(n)
    k = np.round(fire_t * fs).astype(np.int64)
    ok = (k >= 0) & (k < n)
    np.add.at(exc, k[ok], fire_a[ok])
    if pop_t.size:
        kp = np.round(pop_t * fs).astype(np.int64)
        okp = (kp >= 0) & (kp < n)
        np.add.at(exc, kp[okp], pop_gain * rng.uniform(0.5, 1.5, okp.sum()))
    drive = exc
    if not straight:  # the silencer smooths every blow-down (second-order low-pass)
        sos = signal.butter(2, min(p["silencer_hz"], 0.45 * fs), fs=fs, output="sos")
        drive = signal.sosfilt(sos, exc)
    out = np.zeros(n)
    for f, q, g in p["modes"]:
        out += g * resonator(drive, f, q, fs)
    ref = _rms(out)
    if straight and p["rasp_db"] > -60:
        a = math.exp(-1.0 / (p["rasp_decay_ms"] * 1e-3 * fs))
        env = signal.lfilter([1 - a], [1, -a], np.abs(exc))
        lo, hi = p["rasp_hz"] / 1.8, min(p["rasp_hz"] * 1.8, 0.45 * fs)
        band = signal.sosfilt(signal.butter(2, [lo, hi], "bandpass", fs=fs, output="sos"), rng.standard_normal(n))
        rasp = band * env
        out += rasp * (ref * 10 ** (p["rasp_db"] / 20) / _rms(rasp))
    if not straight:
        hum = resonator(drive, p["hum_hz"], 4.0, fs)
        out += hum * (ref * 10 ** (p["hum_db"] / 20) / _rms(hum))
    return out


def tyres(n: int, fs: int, v_ctrl: np.ndarray, tyre_hz: float, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Tyre/road noise: a broad band peaking at ``tyre_hz``, amplitude (v / 15 m/s)^(slope / 20); unit RMS
    at 15 m/s."""
    sos = signal.butter(2, [tyre_hz / 1.6, tyre_hz * 1.6], "bandpass", fs=fs, output="sos")
    band = signal.sosfilt(sos, rng.standard_normal(n))
    band += 0.25 * signal.sosfilt(signal.butter(1, [tyre_hz / 5, min(tyre_hz * 6, 0.45 * fs)], "bandpass", fs=fs,
                                                output="sos"), rng.standard_normal(n))
    band /= _rms(band)
    v = np.interp(np.arange(n) / fs, np.arange(v_ctrl.size) / CTRL, v_ctrl)
    return band * (np.maximum(v, 0.0) / 15.0) ** (slope / 20.0)
