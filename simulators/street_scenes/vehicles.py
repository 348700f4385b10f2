"""Vehicle sources in the emission domain (pressure referred to 1 m, arbitrary scale; the scene scales it).

An engine is modelled as a *pulse train through a pipe*, not as a stack of harmonics:

- each cylinder's blow-down is a volume-velocity pulse ``(t/T) exp(1 - t/T)`` (width ``pulse_ms``) placed at the
  firing instants, found by integrating the engine-cycle rate ``rpm/120`` (four-stroke) against the firing
  fractions of the crank cycle (even for cars up to ``firing_unevenness``; singles and twins with their crank
  angle). Pulse strength follows throttle and a fixed per-cylinder spread, with cycle-to-cycle jitter;
- the pulses excite a straight pipe: a feedback comb with round-trip delay ``2 L / c_gas``, open-end
  reflection ``-pipe_reflect`` and a loss low-pass in the loop; the radiated pressure is the time derivative of
  the volume velocity at the open end;
- pulse-synchronous turbulent roar (noise gated by the smoothed pulse train) goes through the same pipe;
- on overrun (throttle off) the pipe pops: Poisson-timed sharp decaying bursts well above the pulse peaks;
- pipe and tailpipe lose high frequencies: a 2nd-order low-pass at ``pipe_hf_hz``;
- a legal silencer is a 4th-order low-pass at ``muffler_hz`` plus 20 dB less pipe resonance.

rpm stories: ``gears`` (pull through gears: rpm ramps, upshift with a throttle lift), ``blips`` (cruise with rev
blips), ``overrun`` (off-throttle deceleration, then back on), ``cruise`` (steady with a slow wobble).
Tyre/road noise: noise shaped in the frequency domain to a one-octave-wide log-normal bump at ``tyre_peak_hz``
with a low-frequency floor, amplitude-modulated by the tread at the wheel rotation rate.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import signal

from simulators.street_scenes.ranges import Draws

CTRL_HZ = 200


def rpm_story(d: Draws, n: int, fs: int, *, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray, str]:
    """rpm and throttle (0..1) at every sample of an emission window of ``n`` samples."""
    kind = d("rpm_profile")
    rate, drop, phase = d("rpm_rate"), d("gear_drop"), d("rpm_phase")
    every = d("blip_every_s")
    m = n * CTRL_HZ // fs + 2
    rpm, thr = np.empty(m), np.empty(m)
    dt = 1.0 / CTRL_HZ
    if kind == "gears":
        r, g, lift = lo + phase * (hi - lo), 1.0, 0.0
        for i in range(m):
            if lift > 0:
                lift -= dt
                r = max(r - (hi * (1 - drop)) / 0.15 * dt, hi * drop)
                thr[i] = 0.0
            else:
                r += rate * g * dt
                thr[i] = 1.0
                if r >= hi:
                    lift, g = 0.25, g * drop
            rpm[i] = r
    elif kind == "blips":
        t = np.arange(m) * dt + phase * every
        u = np.mod(t, every)
        up = np.clip(u / 0.3, 0, 1)
        down = np.clip(1 - (u - 0.3) / 0.8, 0, 1)
        shape = np.where(u < 0.3, up, down)
        rpm[:] = lo + (hi - lo) * shape
        thr[:] = np.where(u < 0.3, 1.0, 0.05)
    elif kind == "overrun":
        t = np.arange(m) * dt
        t_on = (hi - lo) / rate * (0.5 + phase)
        rpm[:] = np.where(t < t_on, np.maximum(hi - rate * t, lo), lo + 0.3 * (hi - lo) * np.clip(t - t_on, 0, 1))
        thr[:] = np.where(t < t_on, 0.0, 0.6)
    else:
        t = np.arange(m) * dt
        rpm[:] = (lo + 0.3 * (hi - lo)) * (1 + 0.04 * np.sin(2 * np.pi * (0.2 * t + phase)))
        thr[:] = 0.4
    ts = np.arange(n) / fs
    tc = np.arange(m) * dt
    return np.interp(ts, tc, rpm), np.interp(ts, tc, thr), kind


def firing_fractions(d: Draws, moto: bool, cylinders: int | None = None) -> tuple[list[float], int]:
    """Firing instants as fractions of the 720-degree cycle."""
    if moto:
        cyl = d("moto_cylinders") if cylinders is None else cylinders
        if cyl == 1:
            return [0.0], 1
        return [0.0, d("moto_twin_angle") / 720.0], 2
    cyl = d("car_cylinders") if cylinders is None else cylinders
    uneven = d("firing_unevenness")
    fr = [(k / cyl + (uneven * (-1) ** k if k else 0.0)) % 1.0 for k in range(cyl)]
    return fr, cyl


def _pipe_ir(fs: int, length_m: float, c_gas: float, reflect: float, loss: float = 0.35) -> np.ndarray:
    delay = max(2, int(round(2 * length_m / c_gas * fs)))
    trips = int(np.ceil(np.log(1e-3) / np.log(max(reflect, 1e-3)))) + 1
    a = np.zeros(delay + 1)
    a[0], a[1], a[delay] = 1.0, -loss, reflect * (1 - loss)  # y = x - reflect*LP(y[n-D]) (open end: -r)
    imp = np.zeros(delay * trips + 1)
    imp[0] = 1.0
    return signal.lfilter([1.0, -loss], a, imp)


def engine(d: Draws, rng: np.random.Generator, fs: int, rpm: np.ndarray, thr: np.ndarray,
           fractions: list[float], *, straight: bool) -> np.ndarray:
    n = rpm.size
    phase = np.cumsum(rpm / 120.0) / fs  # engine cycles
    cyl_gain = np.exp(rng.normal(0.0, 0.12, len(fractions)))
    pulse_ms = d("pulse_ms")
    times, amps = [], []
    for j, fr in enumerate(fractions):
        ks = np.arange(np.ceil(phase[0] - fr), np.floor(phase[-1] - fr) + 1) + fr
        ks = ks + rng.normal(0.0, 0.006, ks.size)
        idx = np.interp(ks, phase, np.arange(n))
        times.append(idx)
        load = 0.2 + 0.8 * np.interp(idx, np.arange(n), thr)
        amps.append(cyl_gain[j] * load * np.exp(rng.normal(0.0, 0.15, idx.size)))
    idx = np.clip(np.rint(np.concatenate(times)).astype(np.int64), 0, n - 1)
    exc = np.zeros(n)
    np.add.at(exc, idx, np.concatenate(amps))
    tp = pulse_ms * 1e-3
    tk = np.arange(int(8 * tp * fs) + 2) / fs
    pulses = signal.fftconvolve(exc, (tk / tp) * np.exp(1 - tk / tp))[:n]
    env = signal.fftconvolve(np.abs(pulses), np.ones(int(0.002 * fs)) / (0.002 * fs))[:n]
    turb = rng.standard_normal(n) * env
    turb *= np.std(pulses) / max(float(np.std(turb)), 1e-12) * 10 ** (d("turbulence_db_rel") / 20)
    ir = _pipe_ir(fs, d("pipe_len_m"), d("gas_c_mps"), d("pipe_reflect") if straight else 0.1)
    vol = signal.fftconvolve(pulses + turb, ir)[:n]
    p = np.diff(vol, prepend=0.0) * fs / 1000.0  # radiated pressure ~ dU/dt
    crackle_rate, crackle_rel = d("crackle_per_s"), d("crackle_db_rel")
    muffler, hf = d("muffler_hz"), d("pipe_hf_hz")
    if straight:
        off = thr < 0.15
        n_pops = rng.poisson(crackle_rate * off.sum() / fs)
        if n_pops:
            cand = np.flatnonzero(off)
            at = rng.choice(cand, size=n_pops)
            ring = np.arange(int(0.004 * fs)) / fs
            peak = float(np.percentile(np.abs(p), 99.5)) * 10 ** (crackle_rel / 20)
            pops = np.zeros(n)
            np.add.at(pops, at, peak * np.exp(rng.normal(0.0, 0.5, n_pops)) * rng.choice([-1.0, 1.0], n_pops))
            kern = np.exp(-ring / 0.0008) * np.cos(2 * np.pi * rng.uniform(800, 3000) * ring)
            p = p + signal.fftconvolve(pops, kern)[:n]
        p = signal.sosfilt(signal.butter(2, hf, fs=fs, output="sos"), p)
    else:
        p = signal.sosfilt(signal.butter(4, muffler, fs=fs, output="sos"), p)
    return p


def tyre_noise(d: Draws, rng: np.random.Generator, fs: int, n: int, speed_mps: float,
               peak_scale: float = 1.0) -> np.ndarray:
    fp = d("tyre_peak_hz") * peak_scale
    nf = sfft.next_fast_len(n, real=True)
    f = np.fft.rfftfreq(nf, 1.0 / fs)
    lf = np.log(np.maximum(f, 1.0) / fp)
    mag = np.exp(-0.5 * (lf / 0.45) ** 2) + 0.08 / (1 + (f / 150.0) ** 2) + 0.02
    mag[f < 20] = 0.0
    spec = mag * (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size))
    x = sfft.irfft(spec, nf)[:n]
    wheel_hz = abs(speed_mps) / (2 * np.pi * 0.31)
    t = np.arange(n) / fs
    return x * (1 + 0.12 * np.sin(2 * np.pi * wheel_hz * t + rng.uniform(0, 2 * np.pi)))


def _rms(x: np.ndarray) -> float:
    return max(float(np.sqrt(np.mean(x * x))), 1e-15)


def vehicle(kind: str, d: Draws, rng: np.random.Generator, fs: int, n: int, speed_mps: float,
            ) -> tuple[np.ndarray, dict[str, object]]:
    """Emission-domain signal and descriptive labels of one vehicle of ``kind``."""
    meta: dict[str, object] = {}
    if kind in ("exhaust_car", "legal_car"):
        rpm, thr, story = rpm_story(d, n, fs, lo=d("car_rpm_lo"), hi=d("car_rpm_hi"))
        fr, cyl = firing_fractions(d, moto=False)
    elif kind in ("exhaust_moto", "moto_legal"):
        rpm, thr, story = rpm_story(d, n, fs, lo=d("moto_rpm_lo"), hi=d("moto_rpm_hi"))
        fr, cyl = firing_fractions(d, moto=True)
    else:  # heavy
        heavy = d("heavy_kind")
        base = d("heavy_rpm")
        rpm, thr, story = np.full(n, base), np.full(n, 0.6), "diesel"
        fr, cyl = firing_fractions(d, moto=False, cylinders=6)
        meta["heavy_kind"] = heavy
    if kind == "legal_car":  # a legal car cruises gently
        rpm = 0.5 * rpm + 0.5 * float(np.min(rpm))
    straight = kind.startswith("exhaust")
    eng = engine(d, rng, fs, rpm, thr, fr, straight=straight)
    tyre = tyre_noise(d, rng, fs, n, speed_mps, peak_scale=0.7 if kind == "heavy" else 1.0)
    if straight:
        x = eng / _rms(eng) + tyre / _rms(tyre) * 10 ** (d("exhaust_tyre_db_rel") / 20)
    elif kind == "legal_car":
        x = tyre / _rms(tyre) + eng / _rms(eng) * 10 ** (d("legal_engine_db_rel") / 20)
    else:  # legal motorcycle, bus, truck: engine and tyres of similar weight
        x = eng / _rms(eng) + tyre / _rms(tyre) * 10 ** (d("legal_engine_db_rel") / 40)
    f0 = rpm / 120.0 * cyl
    meta.update({"cylinders": cyl, "rpm_story": story, "rpm": [round(float(rpm.min())), round(float(rpm.max()))],
                 "f0_hz": [round(float(f0.min()), 1), round(float(f0.max()), 1)]})
    return x, meta
