"""Sirens and horns: harmonic families on a cumulative phase, with this family's own frequency tables."""

from __future__ import annotations

import numpy as np

from .engines import CTRL_RATE, Tonal

# (low, high) fundamental in Hz per pattern; siren_table picks a row, siren_detune scales it
SIREN_TABLES: dict[str, list[tuple[float, float]]] = {
    "two_tone": [(392.0, 523.0), (420.0, 560.0), (450.0, 600.0), (466.0, 622.0), (494.0, 659.0)],
    "hilo": [(550.0, 740.0), (600.0, 800.0), (660.0, 880.0), (700.0, 930.0), (740.0, 990.0)],
    "wail": [(520.0, 1350.0), (600.0, 1500.0), (650.0, 1650.0), (700.0, 1750.0), (750.0, 1850.0)],
    "yelp": [(520.0, 1350.0), (600.0, 1500.0), (650.0, 1650.0), (700.0, 1750.0), (750.0, 1850.0)],
    "civil": [(300.0, 470.0), (320.0, 500.0), (350.0, 520.0), (380.0, 560.0), (400.0, 600.0)],
}
# cycle period = siren_period_s * this factor
PERIOD_SCALE = {"two_tone": 1.0, "hilo": 0.55, "wail": 3.5, "yelp": 0.22, "civil": 8.0}


def siren_frequency(pattern: str, lo: float, hi: float, period: float, t: np.ndarray) -> np.ndarray:
    ph = (t / period) % 1.0
    if pattern in ("two_tone", "hilo"):
        sq = np.tanh(np.sin(2 * np.pi * ph) * 25.0)          # ~10 ms transitions
        return np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * (0.5 + 0.5 * sq))
    if pattern == "yelp":
        return lo * (hi / lo) ** np.sqrt(ph)                  # fast rise, snap back
    # wail / civil: rise over 40 % of the cycle (log-frequency ease-in), exponential fall
    rise = np.clip(ph / 0.4, 0, 1)
    fall = np.where(ph > 0.4, np.exp(-(ph - 0.4) / 0.18), 1.0)
    return lo * (hi / lo) ** ((0.5 - 0.5 * np.cos(np.pi * rise)) * fall)


class _Base:
    has_tonal = True

    def directivity(self, cos: np.ndarray) -> np.ndarray:
        return np.ones_like(cos)

    def broadband(self, tau, gain, q, n):
        return None

    def events(self) -> list:
        return []

    def tonal_groups(self):
        return self.groups


class Siren(_Base):
    def __init__(self, p: dict, t_on: float, span: tuple[float, float], fs_r: int, rng: np.random.Generator) -> None:
        tau0 = span[0] - 3.0
        t = tau0 + np.arange(int((span[1] + 0.5 - tau0) * CTRL_RATE) + 2) / CTRL_RATE
        lo, hi = (x * p["siren_detune"] for x in SIREN_TABLES[p["pattern"]][p["siren_table"]])
        period = p["siren_period_s"] * PERIOD_SCALE[p["pattern"]]
        self.f_lo, self.f_hi, self.period = lo, hi, period
        f = siren_frequency(p["pattern"], lo, hi, period, t - t_on)
        orders = np.arange(1, 10, dtype=float)
        slope = p["siren_harmonics_db_oct"]
        base_db = slope * np.log2(orders) - np.where(orders % 2 == 0, 9.0, 0.0)
        # loudspeaker horn: high-pass below ~350 Hz; slight wobble of the driver
        wobble = 1.0 + 0.05 * np.sin(2 * np.pi * rng.uniform(3, 7) * t + rng.uniform(0, 6.3))

        def amps(tau: np.ndarray, f0: np.ndarray) -> np.ndarray:
            ff = orders[:, None] * f0[None, :]
            hp = (ff / 350.0) ** 4 / (1 + (ff / 350.0) ** 4)
            w = np.interp(tau, t, wobble)
            on = np.clip((tau - t_on) / 0.3, 0, 1)
            return 10 ** (base_db[:, None] / 20) * np.sqrt(hp) * w * on

        self.groups = [Tonal(tau0, fs_r, f, orders, amps, rng.uniform(0, 2 * np.pi, orders.size))]


class Horn(_Base):
    def __init__(self, p: dict, t_on: float, span: tuple[float, float], fs_r: int, rng: np.random.Generator) -> None:
        tau0 = span[0] - 1.0
        t = tau0 + np.arange(int((span[1] + 0.5 - tau0) * CTRL_RATE) + 2) / CTRL_RATE
        env = np.zeros_like(t)
        start, self.beeps = t_on, []
        for _ in range(int(p["horn_beeps"])):
            dur = p["horn_beep_s"] * rng.uniform(0.7, 1.0)
            a = np.clip((t - start) / 0.015, 0, 1) * np.clip((start + dur - t) / 0.03, 0, 1)
            env = np.maximum(env, a)
            self.beeps.append([round(start, 3), round(start + dur, 3)])
            start += dur + rng.uniform(0.08, 0.3)
        kind = p["horn_kind"]
        if kind == "single":
            fund = [p["horn_f_hz"]]
        elif kind == "air":
            fund = [p["air_horn_f_hz"], p["air_horn_f_hz"] * p["ratio"]]
        else:
            fund = [p["horn_f_hz"], p["horn_f_hz"] * p["ratio"]]
        self.f_hz = [round(float(x), 2) for x in fund]
        n_harm = 14 if kind == "air" else 10
        orders = np.arange(1, n_harm + 1, dtype=float)
        tilt = -4.5 if kind == "air" else -6.0
        base_db = tilt * np.log2(orders)
        self.groups = []
        for j, f0 in enumerate(fund):
            f = f0 * (1 + 0.004 * np.sin(2 * np.pi * rng.uniform(4, 8) * t))
            gain = 10 ** (-rng.uniform(0, 4) / 20) if j else 1.0
            formant = rng.uniform(1800, 3200)

            def amps(tau, f_b, base_db=base_db, gain=gain, formant=formant):
                ff = orders[:, None] * f_b[None, :]
                res = 6.0 / (1 + ((ff - formant) / (0.3 * formant)) ** 2)
                return gain * 10 ** ((base_db[:, None] + res) / 20) * np.interp(tau, t, env)

            self.groups.append(Tonal(tau0, fs_r, f, orders, amps, rng.uniform(0, 2 * np.pi, orders.size)))
