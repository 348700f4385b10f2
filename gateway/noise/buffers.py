"""Raw-sample helpers of the noise pipeline: the ring buffer of recent samples, the overload lower bound of a
clipped event, an event's LCpeak and 1/3-octave spectrum, and the WAV clip of the evidence record (split out of
``gateway.noise.pipeline``)."""

from __future__ import annotations

import base64
import io
import math
import struct

import numpy as np
from scipy import signal

from contract.evidence import Overload, Spectrum
from gateway.noise.dsp import TAU_FAST, to_db
from gateway.noise.spectrum import third_octave_levels

CLIP_GUARD_S = 0.02  # A-weighting impulse response: energy after 10 ms is -71 dB, after 20 ms -87 dB of its total


class Ring:
    """Keeps the last ``cap`` samples; addresses them by absolute sample number."""

    def __init__(self, cap: int) -> None:
        self.buf = np.zeros(cap, dtype=np.float32)
        self.cap = cap
        self.end = 0  # absolute index after the newest sample

    def push(self, x: np.ndarray) -> None:
        n = x.size
        if n >= self.cap:
            self.end += n
            self.buf[np.arange(self.end - self.cap, self.end) % self.cap] = x[-self.cap:]
            return
        i = self.end % self.cap
        k = min(n, self.cap - i)
        self.buf[i: i + k] = x[:k]
        self.buf[: n - k] = x[k:]
        self.end += n

    def get(self, a: int, b: int) -> np.ndarray:
        a = max(a, self.end - self.cap, 0)
        b = min(b, self.end)
        if b <= a:
            return np.zeros(0, dtype=np.float32)
        i, j = a % self.cap, b % self.cap
        if i < j or (j == 0 and b > a and i != 0):
            return self.buf[i: j or self.cap].copy()
        return np.concatenate([self.buf[i:], self.buf[:j]])


def event_overload(ring: Ring, a: int, b: int, *, fs: int, asos: np.ndarray, clip_level: float, k_db: float,
                   corr: float, margin: float, enforcement_db: float, clipped_samples: int, clipped_frames: int,
                   full_scale_db: float) -> Overload:
    """``overload_bound`` of the event on samples [a, b) of ``ring``, with 0.5 s before it as the detector's
    run-in (less where the stream is younger)."""
    pre = int(0.5 * fs)
    seg = ring.get(a - pre, b)
    head = min(pre, max(0, seg.size - 1)) if a - pre >= 0 else max(0, min(a, seg.size - 1))
    return overload_bound(seg, head, fs=fs, asos=asos, clip_level=clip_level, k_db=k_db, corr=corr, margin=margin,
                          enforcement_db=enforcement_db, clipped_samples=clipped_samples,
                          clipped_frames=clipped_frames, full_scale_db=full_scale_db)


def overload_bound(seg: np.ndarray, head: int, *, fs: int, asos: np.ndarray, clip_level: float, k_db: float,
                   corr: float, margin: float, enforcement_db: float, clipped_samples: int, clipped_frames: int,
                   full_scale_db: float) -> Overload:
    """A lower bound of the true LAFmax from the samples the clipping did not touch: A-weighted samples
    from a clipped one to ``CLIP_GUARD_S`` after it are set to zero (energy only ever removed, nothing
    reconstructed), then the Fast detector runs over what is left (``seg[head:]``; ``seg[:head]`` is run-in)."""
    y = signal.sosfilt(asos, seg) if seg.size else seg
    hit = np.abs(seg) >= clip_level
    if hit.any():
        guard = int(CLIP_GUARD_S * fs)
        last = np.maximum.accumulate(np.where(hit, np.arange(seg.size), -guard - 1))
        y = np.where(np.arange(seg.size) - last <= guard, 0.0, y)
    a = math.exp(-1.0 / (fs * TAU_FAST))
    env = signal.lfilter([1 - a], [1, -a], (y * y)[head:]) if seg.size > head else np.zeros(0)
    best = float(env.max()) if env.size else 0.0
    un = round(float(to_db(best, k_db)), 2) if best > 0 else None
    un75 = round(un + corr, 2) if un is not None else None
    return Overload(clipped_samples=clipped_samples, clipped_frames=clipped_frames, full_scale_db=full_scale_db,
                    unclipped_lafmax=un, unclipped_lafmax_7p5=un75,
                    proves_exceedance=un75 is not None and un75 - margin >= enforcement_db)


def wav_b64(x: np.ndarray, fs: int) -> str:
    data = np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767), -32768, 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    buf.write(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, fs,
                                                                                   fs * 2, 2, 16))
    buf.write(b"data" + struct.pack("<I", len(data)) + data)
    return base64.b64encode(buf.getvalue()).decode()


def peak_c(ring: Ring, a: int, b: int, *, fs: int, csos: np.ndarray, k_db: float) -> float | None:
    """LCpeak: the C-weighted peak over samples [a, b), with 0.5 s of run-in for the filter."""
    pre = int(0.5 * fs)
    seg = ring.get(a - pre, b)
    if seg.size <= pre:
        return None
    yc = signal.sosfilt(csos, seg)[min(pre, seg.size - 1):]
    peak = max(float(yc.max()), -float(yc.min()))  # = max |yc|, without an |yc| array
    return round(float(20 * math.log10(max(peak, 1e-15)) + k_db - 10 * math.log10(2)), 2)


def spectrum_at(ring: Ring, pc: int, *, fs: int, k_db: float, t_center: float) -> Spectrum | None:
    """The 1/3-octave LZeq over the second centred on sample ``pc`` (the event's peak)."""
    x = ring.get(pc - fs // 2, pc + fs // 2)
    if x.size < fs // 4:
        return None
    bands, lv = third_octave_levels(x, fs, k_db)
    return Spectrum(t_center=t_center, bands_hz=tuple(bands), levels_db=tuple(lv))
