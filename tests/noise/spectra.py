"""Spectral helpers the scene-family tests share (they check the generators, not the classifier)."""

from __future__ import annotations

import numpy as np

from gateway.noise.dsp import LevelMeter, MeterConfig, summarize
from simulators.noise_scene import Scene


def peak_frequency(y: np.ndarray, t: float, fs: int, t0: float = -10.0) -> float:
    """The frequency (Hz) of the strongest tone of ``y`` in the half second around ``t`` (``y`` starts at ``t0``):
    a Hann-windowed FFT zero-padded to 1/32 Hz bins, refined by the parabola through the log-magnitudes of the
    peak bin and its two neighbours."""
    i = int((t - t0) * fs)
    seg = y[i - fs // 4:i + fs // 4] * np.hanning(fs // 2)
    spec = np.abs(np.fft.rfft(seg, 32 * fs))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1:k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) / 32


def meter(scene: Scene) -> tuple[list, object]:
    """The project's level meter over a whole scene, at the scene's full scale: its frames and their summary."""
    m = LevelMeter(MeterConfig(fs=scene.fs, full_scale_db=float(scene.labels["full_scale_db"])))
    frames = m.feed(scene.audio)
    return frames, summarize(frames, m.k_db)
