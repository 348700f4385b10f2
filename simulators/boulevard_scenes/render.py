"""Spectral-modelling rendering of one moving source at the microphone: Doppler analytically on the partials.

A source (``Emitter``) is described on its own emission-time grid: groups of partials (a base frequency track and
multipliers of its phase, each with an amplitude track), a stochastic residual (a spectral envelope per emission
time), amplitude modulation of that residual, and short clicks. Nothing is pre-rendered and then delayed: for every
reception time t the emission time tau(t) is solved by fixed-point iteration of t = tau + r(tau) / c on the source's
position track (any track: overtakes, filtering motorcycles), and

- each partial is cos(m * phi0(tau(t))): its instantaneous frequency is the emitted one times d tau / d t (the
  Doppler factor of the emission time); its amplitude is the emitted one divided by r(tau), times the air-absorption
  high shelf (dB proportional to r) and the tree canopy's time-varying high-frequency loss, both at the received
  frequency;
- the residual is white noise filtered by STFT (sine windows, 50 % overlap-add) whose gain in each block is the
  emitted envelope read at the block's emission time and at f / (d tau / d t) (the block is time-warped by the same
  mapping), over r, with the same shelves; the rasp (firing-rate AM) is read at tau(t) too;
- clicks arrive at tau + r(tau) / c, over r.
The partials are synthesised at fs / ``rate_div`` with amplitudes linear within 256-sample chunks, then resampled
up; the canopy's diffuse tail (an exponentially decaying noise reverb) is convolved onto the result."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from scipy import signal

C_AIR = 343.0
CTRL_HZ = 200  # emission grid of the source tracks
RECV_HZ = 1000  # reception grid on which tau(t) is solved
CHUNK = 256
FRAME = 1024


@dataclass
class Path:
    t: np.ndarray  # emission times (s, scene time), uniform at CTRL_HZ
    x: np.ndarray  # position along the avenue at those times (m; the microphone is at x = 0)
    lateral: float  # horizontal distance from the microphone to the path (m)
    dz: float  # microphone height minus source height (m)

    def r(self, tau: np.ndarray) -> np.ndarray:
        return np.sqrt(np.interp(tau, self.t, self.x) ** 2 + self.lateral**2 + self.dz**2)

    def moved(self, lateral: float) -> Path:
        return Path(self.t, self.x, lateral, self.dz)


@dataclass
class Tonal:
    f0: np.ndarray  # base frequency on the emission grid, Hz (the phase that the multipliers scale)
    mults: np.ndarray  # (K,) multipliers: harmonic, half orders or inharmonic
    amps: np.ndarray  # (K, grid) emitted amplitudes


@dataclass
class Emitter:
    path: Path
    seed: int
    tonal: list[Tonal] = field(default_factory=list)
    noise: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None  # (tau (J,), f_emit (J, B)) -> gain
    am: Callable[[np.ndarray], np.ndarray] | None = None  # tau -> residual amplitude factor
    clicks: list[tuple[float, np.ndarray]] = field(default_factory=list)
    rate_div: int = 4
    fade_s: float = 0.4


@dataclass
class Medium:
    air_db_per_m: float
    canopy_db: float
    canopy_rate_hz: float
    canopy_phase: tuple[float, float, float]
    tail: np.ndarray | None  # the canopy's diffuse impulse response (without the direct sound)

    def shelf_db(self, f: np.ndarray, r: np.ndarray, tau: np.ndarray) -> np.ndarray:
        air = -self.air_db_per_m * r * f * f / (f * f + 4000.0**2)
        ph = self.canopy_phase
        w = 2 * math.pi * self.canopy_rate_hz
        s = (3 + np.sin(w * tau + ph[0]) + np.sin(1.618 * w * tau + ph[1]) + np.sin(2.414 * w * tau + ph[2])) / 6
        return air - self.canopy_db * s * f * f / (f * f + 2500.0**2)


def emission_times(path: Path, t: np.ndarray) -> np.ndarray:
    tau = t - path.r(t) / C_AIR
    for _ in range(6):  # |dr/dtau| / c < 0.1: the iteration contracts fast
        tau = t - path.r(tau) / C_AIR
    return tau


def _fade(em: Emitter, tau: np.ndarray) -> np.ndarray:
    a, b = em.path.t[0], em.path.t[-1]
    u = np.clip(np.minimum(tau - a, b - tau) / em.fade_s, 0.0, 1.0)
    return np.sin(0.5 * math.pi * u) ** 2


def render(em: Emitter, fs: int, med: Medium) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(first sample index in the scene, partials, residual, clicks) at the microphone, each in emitted-amplitude
    units over r and not yet mixed (the caller weighs residual and clicks, then adds the canopy tail)."""
    p = em.path
    t_a = p.t[0] + p.r(np.array([p.t[0]]))[0] / C_AIR
    t_b = p.t[-1] + p.r(np.array([p.t[-1]]))[0] / C_AIR
    i0 = math.ceil(t_a * fs)
    div = em.rate_div
    nl = max(1, int((t_b - i0 / fs) * fs / div))
    n = nl * div
    tr = np.arange(math.floor(i0 / fs * RECV_HZ) - 2, math.ceil((i0 + n) / fs * RECV_HZ) + 3) / RECV_HZ
    taur = emission_times(p, tr)
    dop = np.gradient(taur, tr)  # d tau / d t: received frequency = emitted x dop
    tonal = _tonal(em, fs // div, i0 / fs, nl, tr, taur, dop, med, div) if em.tonal else np.zeros(n)
    noise = _residual(em, fs, i0 / fs, n, tr, taur, dop, med) if em.noise is not None else np.zeros(n)
    clicks = np.zeros(n)
    for tau_c, w in em.clicks:
        rc = float(p.r(np.array([tau_c]))[0])
        k = round((tau_c + rc / C_AIR) * fs) - i0
        if 0 <= k < n:
            m = min(w.size, n - k)
            clicks[k:k + m] += float(_fade(em, np.array([tau_c]))[0]) * w[:m] / rc
    return i0, tonal, noise, clicks


def with_tail(y: np.ndarray, med: Medium) -> np.ndarray:
    """The direct sound plus the canopy's diffuse tail (the result is longer by the tail)."""
    if med.tail is None:
        return y
    tail = signal.fftconvolve(y.astype(np.float32), med.tail.astype(np.float32))  # single precision: half the cost
    return tail + np.pad(y, (0, med.tail.size - 1))


def _tonal(em, fsl, t0, nl, tr, taur, dop, med, div) -> np.ndarray:
    p = em.path
    t = t0 + np.arange(nl) / fsl
    tau = np.interp(t, tr, taur)
    te = np.arange(p.t[0] - 0.05, p.t[-1] + 0.05, 1.0 / fsl)
    nch = math.ceil(nl / CHUNK)
    tc = t0 + np.arange(nch + 1) * CHUNK / fsl
    tauc, dc = np.interp(tc, tr, taur), np.interp(tc, tr, dop)
    rc = p.r(tauc)
    fade = _fade(em, tauc) / rc
    out = np.zeros(nch * CHUNK)
    frac = np.arange(CHUNK) / CHUNK
    for g in em.tonal:
        phi_e = 2 * math.pi * np.cumsum(np.interp(te, p.t, g.f0)) / fsl
        phi = np.interp(tau, te, phi_e)
        phi = np.pad(phi, (0, nch * CHUNK - nl), mode="edge").reshape(nch, CHUNK)
        f0c = np.interp(tauc, p.t, g.f0)
        amp = np.empty((nch + 1, g.mults.size))
        for k, m in enumerate(g.mults):
            fr = m * f0c * dc
            gain = 10 ** (med.shelf_db(fr, rc, tauc) / 20) * np.clip((0.45 * fsl - fr) / (0.05 * fsl), 0, 1)
            amp[:, k] = np.interp(tauc, p.t, g.amps[k]) * gain * fade
        step = 16
        for c in range(0, nch, step):
            ph = phi[c:c + step]
            cos = np.cos(ph[:, :, None] * g.mults[None, None, :])
            m = ph.shape[0]
            a0 = amp[c:c + m]
            da = amp[c + 1:c + m + 1] - a0
            out[c * CHUNK:(c + m) * CHUNK] += (
                (cos @ a0[:, :, None])[..., 0] + frac[None, :] * (cos @ da[:, :, None])[..., 0]).ravel()
    return signal.resample_poly(out[:nl], div, 1)


def _residual(em, fs, t0, n, tr, taur, dop, med) -> np.ndarray:
    rng = np.random.default_rng(em.seed)
    hop = FRAME // 2
    nf = n // hop + 2
    x = rng.standard_normal((nf + 1) * hop, dtype=np.float32)
    win = np.sin(math.pi * (np.arange(FRAME) + 0.5) / FRAME).astype(np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::hop][:nf] * win
    spec = sfft.rfft(frames, axis=1)
    tj = t0 + np.arange(nf) * hop / fs  # frame j is centred on output sample j * hop
    tauj, dj = np.interp(tj, tr, taur), np.interp(tj, tr, dop)
    rj = em.path.r(tauj)
    fc = np.geomspace(10.0, fs / 2, 72)[None, :]  # the gain is smooth in log frequency: 72 points, then bins
    gain = em.noise(tauj, fc / dj[:, None])
    gain = gain * (_fade(em, tauj) / rj)[:, None] * 10 ** (med.shelf_db(fc, rj[:, None], tauj[:, None]) / 20)
    gain = (gain @ _bins(fs, fc.size)).astype(np.float32)
    spec *= gain
    out = sfft.irfft(spec, FRAME, axis=1) * win
    y = np.zeros((nf + 1) * hop, np.float32)
    for j in range(2):  # overlap-add: even frames and odd frames do not overlap among themselves
        blocks = out[j::2]
        seg = y[j * hop: j * hop + blocks.size]
        seg += blocks.ravel()[: seg.size]
    y = y[hop: hop + n].astype(float)
    if em.am is not None:
        y *= em.am(np.interp(t0 + np.arange(n) / fs, tr, taur))
    return y


_BINS: dict = {}


def _bins(fs: int, k: int) -> np.ndarray:
    """Linear interpolation (in log frequency) from k log-spaced points 10 Hz - fs/2 onto the STFT bins."""
    if (fs, k) not in _BINS:
        f = np.fft.rfftfreq(FRAME, 1 / fs)
        x = np.log(np.maximum(f, 10.0) / 10.0) / math.log(fs / 2 / 10.0) * (k - 1)
        w = np.zeros((k, f.size))
        i = np.minimum(np.floor(x).astype(int), k - 2)
        u = x - i
        w[i, np.arange(f.size)] = 1 - u
        w[i + 1, np.arange(f.size)] += u
        _BINS[(fs, k)] = w
    return _BINS[(fs, k)]
