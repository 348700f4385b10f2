"""The signalised approach: a traffic-light cycle, a queue at the stop line, and each vehicle's speed track and
path (straight or turning) at the control rate."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.junction_scenes.propagate import CTRL, Path

REACH_M = 70.0  # a vehicle is rendered while within this distance along the street


@dataclass
class Light:
    green_s: float
    red_s: float
    phase: float  # cycle fraction at t = 0 (0 = green starts)

    def greens(self, t_lo: float, t_hi: float) -> list[tuple[float, float]]:
        cyc = self.green_s + self.red_s
        start = -self.phase * cyc
        k0 = math.floor((t_lo - start) / cyc) - 1
        out = []
        for k in range(k0, k0 + int((t_hi - t_lo) / cyc) + 4):
            g0 = start + k * cyc
            out.append((g0, g0 + self.green_s))
        return out

    def is_green(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.greens(t - 1, t + 1))

    def next_green(self, t: float) -> float:
        return min(a for a, _ in self.greens(t - 1, t + self.green_s + self.red_s + 1) if a >= t)


@dataclass
class Motion:
    t0: float  # emission time of v[0], s
    v: np.ndarray  # speed, m/s, control rate
    path: Path
    role: str  # through, queued
    t_stop: float | None
    t_go: float | None
    t_line: float  # time it passes (or reaches) the stop line


def plan(role: str, t_line: float, v0: float, a_through: float, brake: float, accel: float, v_max: float,
         x_stop: float, t_go: float | None, lane: float, height: float, turn: dict | None,
         duration: float, pad: float = 6.0) -> Motion:
    """Speed track and path. ``through``: passes the stop line at ``t_line`` at ``v0`` with a constant
    acceleration (speed kept in 2-25 m/s). ``queued``: brakes to a stop at ``x_stop``, waits, pulls away at
    ``t_go`` up to ``v_max``."""
    if role == "through":
        lo, hi = t_line - 40.0, t_line + 40.0
        tau = np.arange(lo, hi, 1 / CTRL)
        v = np.clip(v0 + a_through * (tau - t_line), 2.0, 25.0)
        s = np.cumsum(v) / CTRL
        s = s - np.interp(t_line, tau, s) + x_stop
        t_stop = None
    else:
        t_stop = t_line
        t_brake = t_stop - v0 / brake
        lo = t_brake - 60.0 / v0 - 1.0
        hi = t_go + math.sqrt(2 * REACH_M / accel) + REACH_M / v_max + 2.0
        tau = np.arange(lo, hi, 1 / CTRL)
        v = np.where(tau < t_brake, v0, np.where(tau < t_stop, v0 - brake * (tau - t_brake), 0.0))
        v = np.where(tau >= t_go, np.minimum(accel * (tau - t_go), v_max), v)
        v = np.maximum(v, 0.0)
        s = np.cumsum(v) / CTRL
        s = s - np.interp(t_stop, tau, s) + x_stop
    # keep the part within reach and inside the scene (plus the sound's travel time)
    keep = (np.abs(s) < REACH_M) & (tau > -pad) & (tau < duration + pad)
    if not keep.any():
        keep[np.argmin(np.abs(s))] = True
    i0, i1 = int(np.argmax(keep)), int(keep.size - np.argmax(keep[::-1]))
    tau, v, s = tau[i0:i1], v[i0:i1], s[i0:i1]
    x, y = s.copy(), np.full(s.size, lane)
    if turn is not None:
        x_turn = x_stop + turn["after"]
        rad, side = turn["radius"], (1.0 if turn["side"] == "away" else -1.0)
        if side < 0:
            x_turn = max(x_turn, 3.0)
        u = s - x_turn
        arc = math.pi / 2 * rad
        phi = np.clip(u, 0, arc) / rad
        x = np.where(u <= 0, s, x_turn + rad * np.sin(phi))
        y = lane + side * rad * (1 - np.cos(phi))
        y = np.where(u > arc, lane + side * (rad + (u - arc)), y)
    return Motion(float(tau[0]), v, Path(float(tau[0]), x, y, height), role, t_stop, t_go, t_line)


def queue_roles(t_lines: list[float], light: Light, headway: float, gap: float,
                x_stop: float) -> list[tuple[str, float, float | None, float]]:
    """For vehicles reaching the stop line at ``t_lines`` (sorted by time): (role, t_stop or t_line, t_go,
    x where it stops). Arrivals on red join the queue of that red phase; the queue leaves at green, one every
    ``headway`` seconds; arrivals on green while a queue still discharges join its tail."""
    order = np.argsort(t_lines)
    out: list = [None] * len(t_lines)
    queue_green, queue_n = None, 0
    for i in order:
        t = t_lines[i]
        if light.is_green(t):
            if queue_green is not None and t < queue_green + queue_n * headway:
                x = x_stop - queue_n * gap
                out[i] = ("queued", t - 0.5, queue_green + queue_n * headway, x)
                queue_n += 1
            else:
                out[i] = ("through", t, None, x_stop)
            continue
        g = light.next_green(t)
        if g != queue_green:
            queue_green, queue_n = g, 0
        x = x_stop - queue_n * gap
        out[i] = ("queued", t, g + queue_n * headway, x)
        queue_n += 1
    return out
