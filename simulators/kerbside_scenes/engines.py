"""Engines as physical pulse sources: motion and throttle stories, firing instants, blow-down pulses, the exhaust
pipe as a waveguide with an open-end reflection, silencers, overrun pops.

Each firing is one blow-down pulse ``(n+1) a^n`` (a two-pole decay); its shape varies cycle to cycle as a
per-firing mix of a short and a long pulse (``pulse_var``), its amplitude with throttle, rpm and jitter. A
misfire drops the pulse and may be followed by a backfire pop. The pulse train drives the pipe: a digital
waveguide whose loop is the round trip ``2L/c_gas`` with the open-end reflection ``-rho`` low-passed (its
impulse response, then one FFT convolution). The radiated pressure is the time derivative of the flow at the
tailpipe. Legal silencers: little reflection and a second-order low-pass at ``muffler_hz``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from simulators.kerbside_scenes.canyon import CTRL_HZ

FIRING = {  # cycle fractions (4-stroke: one cycle = 720 crank degrees)
    "single": [0.0], "parallel_twin": [0.0, 270 / 720], "triple": [0, 1 / 3, 2 / 3],
    "inline_four": [0, 0.25, 0.5, 0.75],
}


@dataclass
class Motion:
    """Control tracks at 1 kHz over the source's window: position, speed, rpm and throttle."""
    t0: float  # window start, scene seconds
    x: np.ndarray
    speed: np.ndarray
    t_cpa: float
    story: str


def motion(dr, part: str, t_cpa: float, v: float, direction: int, story: str, accel_k: float = 1.0,
           reach_m: float = 55.0) -> Motion:
    """Constant speed through the closest approach, or (``launch``) waiting at a light and accelerating away."""
    if story == "launch":
        stop = dr(part, "stop_x_m")
        idle = dr(part, "idle_s")
        acc = dr(part, "accel_mps2") * accel_k
        dist = -stop
        t_acc = v / acc
        travel = math.sqrt(2 * dist / acc) if dist <= 0.5 * acc * t_acc**2 else t_acc + (dist - 0.5 * v * t_acc) / v
        t_go = t_cpa - travel
        t0 = t_go - idle
        t1 = t_cpa + min(6.0, max(2.5, reach_m / v))
        tt = t0 + np.arange(int((t1 - t0) * CTRL_HZ) + 1) / CTRL_HZ
        sp = np.clip((tt - t_go) * acc, 0.0, v)
        x = direction * (stop + np.concatenate([[0.0], np.cumsum(sp[:-1]) / CTRL_HZ]))
        return Motion(t0, x, sp, t_cpa, story)
    half = min(7.0, max(3.0, reach_m / max(v, 0.5)))
    t0 = t_cpa - half
    tt = t0 + np.arange(int(2 * half * CTRL_HZ) + 1) / CTRL_HZ
    return Motion(t0, direction * v * (tt - t_cpa), np.full(tt.size, v), t_cpa, story)


def rpm_track(dr, part: str, m: Motion, base: float, idle: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """rpm and throttle (0-1) at 1 kHz for the story: cruise, gears, blips, overrun, launch."""
    n = m.x.size
    tt = m.t0 + np.arange(n) / CTRL_HZ
    rise, drop = dr(part, "rpm_rise"), dr(part, "gear_drop")
    top = base * rise
    centre = m.t_cpa + dr(part, "story_offset_s")
    rpm, thr = np.full(n, base), np.full(n, 0.45)
    rng = dr.rng(part + "/rpm")
    if m.story == "cruise":
        rpm *= 1 + 0.03 * np.sin(2 * np.pi * 0.25 * tt + rng.uniform(0, 6.3))
    elif m.story == "blips":
        for tb in np.arange(centre - 3.0, centre + 3.0, rng.uniform(0.8, 1.6)):
            s = tt - tb
            up = (s >= 0) & (s < 0.12)
            rpm += (top - base) * np.where(up, s / 0.12, np.where(s >= 0.12, np.exp(-(s - 0.12) / 0.35), 0.0))
            thr = np.where(up, 1.0, np.where((s >= 0.12) & (s < 0.8), 0.0, thr))
    elif m.story == "overrun":
        s = tt - (centre - 1.0)
        rpm = np.where(s < 0, np.minimum(top, base + (top - base) * (1 + s / 4)), base + (top - base) * np.exp(-s / 1.5))
        thr = np.where(s < 0, 1.0, 0.0)
    else:  # gears / launch: full-throttle pulls with upshifts (the throttle shut while shifting)
        start = m.t0 + np.argmax(m.speed > 0) / CTRL_HZ if m.story == "launch" else centre - 2.5
        lo = idle * 1.25 if m.story == "launch" else base * 0.9
        cur, shift_left, k0 = lo, 0.0, int(round((start - m.t0) * CTRL_HZ))
        if m.story == "launch":
            rpm[:max(k0, 0)], thr[:max(k0, 0)] = idle, 0.08
        k0 = max(k0, 0)
        dt = 1.0 / CTRL_HZ
        for k in range(k0, n):
            if shift_left > 0:
                shift_left -= dt
                cur = max(cur - (top - top * drop) * dt / 0.15, top * drop)
                rpm[k], thr[k] = cur, 0.0
                continue
            cur += rate * dt * (1.0 - 0.4 * (cur / top))
            if cur >= top:
                shift_left = 0.22
            rpm[k], thr[k] = cur, 1.0
    rpm = rpm * (1 + 0.004 * rng.standard_normal(n).cumsum() / math.sqrt(n))
    return np.maximum(rpm, 300.0), np.clip(thr, 0.0, 1.0)


def interp_ctrl(track: np.ndarray, n: int, fs: int) -> np.ndarray:
    return np.interp(np.arange(n) / fs, np.arange(track.size) / CTRL_HZ, track).astype(np.float32)


def _blowdown(train: np.ndarray, rise_s: float, fs: int) -> np.ndarray:
    a = math.exp(-1.0 / max(rise_s * fs, 0.5))
    return signal.lfilter([1.0 - a], [1.0, -2 * a, a * a], train) * (1.0 - a) * math.e


def firings(rpm: np.ndarray, offsets: list[float], strokes: int) -> tuple[np.ndarray, np.ndarray]:
    """Firing times (s from the window start) and cylinder index, from the integrated crank phase."""
    cyc = np.concatenate([[0.0], np.cumsum(rpm[:-1]) / 60.0 / (strokes / 2) / CTRL_HZ])
    m = np.arange(int(cyc[-1]) + 2)
    c = (m[:, None] + np.asarray(offsets)[None, :]).ravel()
    cyl = np.tile(np.arange(len(offsets)), m.size)
    keep = (c > 0) & (c < cyc[-1])
    order = np.argsort(c[keep])
    return np.interp(c[keep][order], cyc, np.arange(rpm.size) / CTRL_HZ), cyl[keep][order]


def pipe_ir(fs: int, length_m: float, c_gas: float, rho: float, hf_hz: float) -> np.ndarray:
    """Impulse response of the pipe: y = x - rho LP(y delayed by the round trip)."""
    d = max(int(round(2 * length_m / c_gas * fs)), 2)
    p = math.exp(-2 * math.pi * hf_hz / fs)
    den = np.zeros(d + 1)
    den[0], den[1] = 1.0, -p
    den[d] += rho * (1 - p)
    k = min(d * max(int(math.log(1e-3) / math.log(max(rho, 0.05))) + 2, 4), 4 * fs // 10)
    imp = np.zeros(k)
    imp[0] = 1.0
    return signal.lfilter([1.0, -p], den, imp)


def engine(dr, part: str, fs: int, n: int, rpm: np.ndarray, thr: np.ndarray, offsets: list[float], strokes: int,
           straight: bool, brake: bool = False) -> tuple[np.ndarray, dict]:
    """Radiated exhaust pressure (arbitrary scale) of one engine over ``n`` samples."""
    rng = dr.rng(part + "/engine")
    t_f, cyl = firings(rpm, offsets, strokes)
    k = np.minimum((t_f * fs).astype(np.int64), n - 1)
    idx = np.minimum((t_f * CTRL_HZ).astype(np.int64), rpm.size - 1)
    th, rp = thr[idx], rpm[idx]
    spread = 1 + 0.12 * rng.standard_normal(len(offsets))
    amp = (0.15 + 0.85 * (1.0 if brake else th)) * (rp / 3000.0) ** 0.3 * spread[cyl]
    amp *= np.maximum(1 + dr(part, "pulse_jitter") * rng.standard_normal(amp.size), 0.05)
    misfire = rng.random(amp.size) < (dr(part, "misfire_p") if straight and not brake else 0.0)
    amp[misfire] = 0.0
    w = np.clip(0.5 + dr(part, "pulse_var") * rng.standard_normal(amp.size), 0.0, 1.0)
    rise = dr(part, "pulse_ms") / 1000 * (0.35 if brake else 1.0)
    exc = (_blowdown(np.bincount(k, amp * (1 - w), n), rise * 0.6, fs)
           + _blowdown(np.bincount(k, amp * w, n), rise * 1.8, fs))
    length, c_gas = dr(part, "pipe_len_m"), dr(part, "gas_c_mps")
    if straight:
        rho, hf = dr(part, "end_reflect"), dr(part, "end_hf_hz")
    else:
        rho, hf = dr(part, "muffler_reflect"), 2000.0
    flow = signal.oaconvolve(exc, pipe_ir(fs, length, c_gas, rho, hf))[:n]
    env = signal.lfilter([0.02], [1, -0.98], np.abs(exc))
    noise = signal.sosfilt(signal.butter(2, [100, 1500], "bandpass", fs=fs, output="sos"), rng.standard_normal(n))
    turb = noise * env
    turb *= 10 ** (dr(part, "turbulence_db") / 20) * rms(flow) / max(rms(turb), 1e-12)
    flow = flow + turb
    out = np.diff(flow, prepend=0.0) * fs / 1000.0
    if straight:
        out = signal.sosfilt(signal.butter(2, min(hf * 1.5, 0.45 * fs), fs=fs, output="sos"), out)
    else:
        out = signal.sosfilt(signal.butter(2, dr(part, "muffler_hz"), fs=fs, output="sos"), out) + 0.05 * out
    info = {"firings": int(amp.size), "misfires": int(misfire.sum()), "pops": 0}
    if straight and not brake:
        out, info["pops"] = _pops(dr, part, rng, out, fs, thr, rpm, t_f[misfire])
    return out.astype(np.float32), info


def _pops(dr, part, rng, out, fs, thr, rpm, backfire_t) -> tuple[np.ndarray, int]:
    """Overrun crackle (throttle shut above idle) and backfires after misfires: decaying band-passed bursts."""
    rate = dr(part, "pop_per_s")
    over = (thr < 0.05) & (rpm > 1.05 * np.min(rpm))
    tt = np.flatnonzero(over) / CTRL_HZ
    n_pop = rng.poisson(rate * tt.size / CTRL_HZ) if tt.size else 0
    back = backfire_t[rng.random(backfire_t.size) < 0.5]
    times = np.concatenate([rng.choice(tt, n_pop) if n_pop else np.zeros(0),
                            back + rng.uniform(0.005, 0.03, back.size)])
    if not times.size:
        return out, 0
    peak = float(np.max(np.abs(out))) or 1.0
    train = np.bincount(np.minimum((times * fs).astype(np.int64), out.size - 1),
                        peak * 10 ** (dr(part, "pop_db") / 20) * rng.uniform(0.3, 1.0, times.size), out.size)
    burst = signal.lfilter([1.0], [1, -math.exp(-1 / (0.003 * fs))], train) * rng.standard_normal(out.size)
    burst = signal.sosfilt(signal.butter(2, [500, min(5000, 0.45 * fs)], "bandpass", fs=fs, output="sos"), burst)
    return out + burst, int(times.size)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def tyres(dr, part: str, fs: int, speed: np.ndarray, n: int) -> np.ndarray:
    """Tyre/road noise: a band around ``tyre_peak_hz`` plus a low floor, amplitude ~ speed^1.5."""
    rng = dr.rng(part + "/tyre")
    f0 = dr(part, "tyre_peak_hz")
    x = rng.standard_normal(n)
    band = signal.sosfilt(signal.butter(2, [f0 / 1.7, f0 * 1.7], "bandpass", fs=fs, output="sos"), x)
    low = signal.sosfilt(signal.butter(2, 250, fs=fs, output="sos"), x)
    return ((band + 0.3 * low) * interp_ctrl((np.maximum(speed, 0.0) / 15.0) ** 1.5, n, fs)).astype(np.float32)


def math_tone(freq_hz: np.ndarray, fs: int, phase0: float = 0.0) -> np.ndarray:
    """sin of the integrated frequency track (samples)."""
    return np.sin(phase0 + 2 * np.pi * np.cumsum(freq_hz, dtype=np.float64) / fs).astype(np.float32)
