"""Engines driven by an rpm track: firing-order harmonics with their own random envelopes, half orders for
uneven firing, quarter-wave exhaust-pipe formants, firing-synchronous combustion noise, tyre noise, and
overrun pops. Everything is a function of emission time (see render.py)."""

from __future__ import annotations

import numpy as np
from scipy import signal

CTRL_RATE = 200.0   # Hz, rpm and envelope tracks
C_HOT = 480.0       # m/s, speed of sound in hot exhaust gas
MAX_FIRING_ORDERS = 20
MAX_HALF_K = 12
F_TONAL_MAX = 5000.0  # above this the engine is its broadband part


def rpm_track(story: str, base: float, rise: float, t: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """rpm and throttle (0..1) over times t (s, 0 = centre of the story)."""
    peak = base * rise
    thr = np.ones_like(t)
    if story == "cruise":
        rpm = base * (1 + 0.03 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6.3)))
        thr *= 0.5
    elif story == "accelerate":
        rpm = base + (peak - base) * np.clip((t + 4.0) / 8.0, 0, 1)
    elif story == "gears":
        period = rng.uniform(1.4, 2.4)
        ph = ((t + 6.0) / period) % 1.0
        shift = 0.12 / period
        rpm = np.where(ph < 1 - shift, 0.65 * peak + 0.35 * peak * ph / (1 - shift),
                       peak - 0.35 * peak * (ph - 1 + shift) / shift)
        thr = np.where(ph < 1 - shift, 1.0, 0.0)
    elif story == "rev":
        rpm = np.full_like(t, base)
        thr *= 0.3
        for tb in rng.uniform(-3.0, 3.0, size=int(rng.integers(2, 4))):
            up = np.clip((t - tb) / 0.25, 0, 1)
            down = np.where(t > tb + 0.25, np.exp(-(t - tb - 0.25) / 0.45), 1.0)
            rpm = np.maximum(rpm, base + (peak * 1.2 - base) * up * down)
            thr = np.where((t >= tb) & (t < tb + 0.25), 1.0, thr)
    elif story == "overrun":
        rpm = peak + (base - peak) * np.clip((t + 3.0) / 6.0, 0, 1)
        thr *= 0.05
    else:
        raise ValueError(f"rpm_story {story!r}")
    return rpm, thr


class Tonal:
    """One harmonic family: component k has frequency orders[k] * f_base and phase orders[k] * phase."""

    def __init__(self, tau0: float, fs_r: int, f_base: np.ndarray, orders: np.ndarray, amp_fn, offsets) -> None:
        self.tau0, self.fs_r, self.orders, self.amp_fn, self.offsets = tau0, fs_r, orders, amp_fn, offsets
        self.f_ctrl = f_base                                  # on the control grid of emission time
        self.t_ctrl = tau0 + np.arange(f_base.size) / CTRL_RATE
        t_r = tau0 + np.arange(int((self.t_ctrl[-1] - tau0) * fs_r) + 1) / fs_r
        f_r = np.interp(t_r, self.t_ctrl, f_base)
        self.t_r = t_r
        self.phi = np.concatenate([[0.0], np.cumsum(2 * np.pi * f_r[:-1] / fs_r)])

    def control(self, tau: np.ndarray):
        f = np.interp(tau, self.t_ctrl, self.f_ctrl)
        return self.orders, self.amp_fn(tau, f), f

    def phase(self, tau: np.ndarray) -> np.ndarray:
        return np.interp(tau, self.t_r, self.phi)


class Engine:
    """A vehicle's engine and tyres. ``p`` holds the drawn parameters (see spec.RANGES)."""
    has_tonal = True

    def __init__(self, p: dict, t_centre: float, span: tuple[float, float], fs: int, fs_r: int,
                 rng: np.random.Generator) -> None:
        self.p, self.fs, self.rng = p, fs, rng
        tau0 = span[0] - 2.5
        t_ctrl = tau0 + np.arange(int((span[1] + 0.5 - tau0) * CTRL_RATE) + 2) / CTRL_RATE
        rpm, thr = rpm_track(p["rpm_story"], p["rpm"], p["rpm_rise"], t_ctrl - t_centre, rng)
        self.rpm, self.t_ctrl = rpm, t_ctrl
        drpm = np.gradient(rpm, 1 / CTRL_RATE)
        self.overrun = (drpm < -300.0) | (thr < 0.1)
        self.load = 10 ** ((np.clip(thr, 0, 1) * 6.0 - 6.0) / 20) * (rpm / p["rpm"]) ** 0.75
        cyl = int(p["cylinders"])
        f_half = rpm / 120.0                      # half-order base: crank rate / 2
        f_max = min(0.45 * fs_r, F_TONAL_MAX)
        k_fire = cyl * np.arange(1, MAX_FIRING_ORDERS + 1)
        k_half = np.array([k for k in range(1, MAX_HALF_K + 1) if k % cyl]) if p["uneven"] else np.array([], int)
        orders = np.unique(np.concatenate([k_fire, k_half])).astype(int)
        orders = orders[orders * f_half.min() < f_max]
        self.orders = orders
        half = np.where(orders % cyl == 0, 0.0, p["half_order_db"])
        # random per-harmonic envelopes: low-passed Gaussian log-gains
        a = np.exp(-1.0 / (p["jitter_s"] * CTRL_RATE))
        jit = signal.lfilter([1 - a], [1, -a], rng.standard_normal((orders.size, t_ctrl.size)), axis=1)
        jit /= max(float(np.std(jit[:, t_ctrl.size // 4:])), 1e-9)
        self.jit_db = p["jitter_db"] * jit + half[:, None]
        res_f = (2 * np.arange(1, 5) - 1) * C_HOT / (4 * p["pipe_length_m"])
        self.res_f, self.res_w = res_f, p["resonance_db"] / (1 + 0.4 * np.arange(4))
        self.f_fire0 = p["rpm"] / 120.0 * cyl
        self.tonal = Tonal(tau0, fs_r, f_half, orders.astype(float), self._amps, rng.uniform(0, 2 * np.pi, orders.size))
        self.tonal_rms = float(np.sqrt(0.5 * np.sum(10 ** (self._static_db(orders * p["rpm"] / 120.0) / 10))))
        self._bb: dict[int, np.ndarray] = {}
        self._pops = self._make_pops(span)

    def _static_db(self, f: np.ndarray) -> np.ndarray:
        q = self.p["resonance_q"]
        res = sum(w / (1 + q * q * (f / fr - fr / f) ** 2) for fr, w in zip(self.res_f, self.res_w, strict=False))
        return self.p["slope_db_oct"] * np.log2(np.maximum(f, 1.0) / self.f_fire0) + res

    def _amps(self, tau: np.ndarray, f_half: np.ndarray) -> np.ndarray:
        f = self.orders[:, None] * f_half[None, :]
        idx = np.clip((tau - self.t_ctrl[0]) * CTRL_RATE, 0, self.t_ctrl.size - 1).astype(int)
        db = self._static_db(f) + self.jit_db[:, idx]
        load = self.load[idx] * np.where(self.overrun[idx], 0.5, 1.0)
        return 10 ** (db / 20) * load / self.tonal_rms

    def tonal_groups(self):
        return [self.tonal]

    def directivity(self, cos: np.ndarray) -> np.ndarray:
        return 1.0 + self.p["rear_directivity"] * (-cos)

    def broadband(self, tau: np.ndarray, gain: np.ndarray, q: int, n: int) -> np.ndarray:
        """Firing-synchronous combustion noise plus tyre noise; tau and gain (directivity / r) are given every
        q-th sample and held (the noise itself is full band)."""
        p = self.p
        if n not in self._bb:
            g = np.random.default_rng(self.rng.integers(1 << 62))
            w = g.standard_normal((2, n))
            c = p["bb_centre_hz"]
            sos = signal.butter(2, [c / 1.8, min(c * 1.8, 0.45 * self.fs)], "bandpass", fs=self.fs, output="sos")
            tyre = signal.butter(2, [500.0, 2000.0], "bandpass", fs=self.fs, output="sos")
            self._bb[n] = np.stack([signal.sosfilt(sos, w[0]), signal.sosfilt(tyre, w[1])])
            self._bb[n] /= np.std(self._bb[n], axis=1, keepdims=True)
        comb, tyre = self._bb[n]
        phase = self.tonal.phase(tau) * int(p["cylinders"])       # firing phase
        if p["uneven"]:
            phase = phase + 0.7 * np.sin(phase / 2)
        s = p["pulse_sharpness"]
        pulse = ((1 + np.cos(phase)) / 2) ** s / np.sqrt(_pulse_ms(s))
        idx = np.clip((tau - self.t_ctrl[0]) * CTRL_RATE, 0, self.t_ctrl.size - 1).astype(int)
        env = np.repeat(pulse * 10 ** (-p["harmonic_db"] / 20) * self.load[idx] * gain, q)[:n]
        return comb * env + tyre * np.repeat(gain * 10 ** (p["tyre_db"] / 20), q)[:n]

    def _make_pops(self, span: tuple[float, float]) -> list:
        p, g = self.p, np.random.default_rng(self.rng.integers(1 << 62))
        if p["pop_per_s"] <= 0:
            return []
        t = np.arange(span[0], span[1], 1 / CTRL_RATE)
        idx = np.clip(((t - self.t_ctrl[0]) * CTRL_RATE).astype(int), 0, self.t_ctrl.size - 1)
        hits = t[(g.random(t.size) < p["pop_per_s"] / CTRL_RATE) & self.overrun[idx]]
        pops = []
        self._pop_sos = signal.butter(2, [600.0, min(6000.0, 0.4 * self.fs)], "bandpass", fs=self.fs, output="sos")
        for te in hits:
            n = int(self.fs * g.uniform(0.004, 0.015))
            k = g.standard_normal(n) * np.exp(-np.arange(n) / (self.fs * g.uniform(0.0008, 0.004)))
            k = signal.sosfilt(self._pop_sos, k)  # a bang: most energy 0.6-6 kHz
            amp = 10 ** ((p["pop_db"] + g.normal(0, 4)) / 20) * 4.0 / max(float(np.std(k[: n // 4 + 1])), 1e-9)
            pops.append((float(te + g.uniform(0, 1 / CTRL_RATE)), amp, k))
        return pops

    def events(self) -> list:
        return self._pops


def _pulse_ms(s: float) -> float:
    x = np.linspace(0, 2 * np.pi, 4096, endpoint=False)
    return float(np.mean(((1 + np.cos(x)) / 2) ** (2 * s)))
