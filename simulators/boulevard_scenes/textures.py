"""Background by statistical texture synthesis, and the weather.

A texture layer is 10-20 band-pass channels (log-spaced, each about a third of the layer's span wide) whose
envelopes are independent log-normal processes: each channel draws its own modulation rate (the corner of the
low-passed Gaussian log-envelope) and depth, and its level follows the layer's tilt (plus a boost below 500 Hz for
rumble). It is synthesised directly as an STFT: magnitude = channel shapes x channel envelopes, complex Gaussian bins (random phase), sine
windows, overlap-add. The layer kind decides where its channels lie and how fast they move: traffic rumble (low,
slow), café babble (speech band, syllabic 2-6 Hz), fountain (broadband, fast), leaves in wind (high, gusty)."""

from __future__ import annotations

import math

import numpy as np
from scipy import fft as sfft
from scipy import signal

FRAME = 2048
KINDS = {  # (lowest centre Hz, highest centre Hz, modulation-rate scale)
    "rumble": (30.0, 1200.0, 0.3), "cafe": (150.0, 4000.0, 1.0), "fountain": (200.0, 12000.0, 1.5),
    "leaves": (700.0, 14000.0, 0.6),
}


def _lowpass_noise(rng, n: int, corner: float, rate: float) -> np.ndarray:
    """Unit-variance Gaussian noise low-passed at ``corner`` Hz (sampled at ``rate`` Hz). It is made long enough
    for its variance to be estimated (several correlation times), then cut to n."""
    m = min(max(n, int(8 * rate / corner)), 1 << 20) + 64
    x = np.fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m, 1 / rate)
    y = np.fft.irfft(x / np.sqrt(1 + (f / corner) ** 4), m)
    return y[:n] / (np.std(y) + 1e-12)


def stft_noise(mag: np.ndarray, rng, n: int) -> np.ndarray:
    """A signal of length n whose STFT (frames x bins, sine windows, hop FRAME/2) has magnitude ``mag``."""
    hop = FRAME // 2
    spec = rng.standard_normal(mag.shape, dtype=np.float32) + 1j * rng.standard_normal(mag.shape, dtype=np.float32)
    spec *= (mag / math.sqrt(2)).astype(np.float32)  # random phase (and Rayleigh magnitude): noise
    out = sfft.irfft(spec, FRAME, axis=1) * np.sin(math.pi * (np.arange(FRAME) + 0.5) / FRAME).astype(np.float32)
    y = np.zeros((mag.shape[0] + 1) * hop, np.float32)
    for j in range(2):
        blocks = out[j::2].ravel()
        seg = y[j * hop: j * hop + blocks.size]
        seg += blocks[: seg.size]
    return y[hop: hop + n].astype(float)


def texture(part: str, d, n: int, fs: int) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(d.rng_seed(part))
    kind = d(part, "texture")
    lo, hi, speed = KINDS[kind]
    ch = d(part, "texture_channels")
    tilt = d(part, "texture_tilt_db_oct")
    boost = d(part, "rumble_boost_db")
    centres = lo * (hi / lo) ** ((np.arange(ch) + 0.5) / ch)
    width = math.log2(hi / lo) / ch * 1.5
    hop = FRAME // 2
    nf = n // hop + 2
    f = np.fft.rfftfreq(FRAME, 1 / fs)
    rate = fs / hop
    mods = []
    env = np.zeros((nf, f.size))
    for c, fc in enumerate(centres):
        mod_hz = d(f"{part}/ch{c}", "texture_mod_hz") * speed
        mod_db = d(f"{part}/ch{c}", "texture_mod_db")
        mods.append(round(mod_hz, 3))
        level = tilt * math.log2(fc / 1000.0) + (boost if fc < 500 else 0.0)
        shape = np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / fc) / (width / 2)) ** 2)
        e = 10 ** ((level + mod_db * _lowpass_noise(rng, nf, min(mod_hz, rate / 3), rate)) / 20)
        env += e[:, None] * shape[None, :]
    y = stft_noise(env, rng, n)
    return y, {"kind": f"texture_{kind}", "channels": ch, "centres_hz": [round(float(c), 1) for c in centres],
               "mod_hz": mods}


def wind(part: str, d, n: int, fs: int) -> np.ndarray:
    """Wind on the microphone: low-frequency turbulence (power ~ f^-2 above the corner) in slow gusts."""
    rng = np.random.default_rng(d.rng_seed(part))
    corner = d(part, "wind_corner_hz")
    hop = FRAME // 2
    nf = n // hop + 2
    f = np.fft.rfftfreq(FRAME, 1 / fs)
    gust = np.exp(0.9 * _lowpass_noise(rng, nf, 0.3, fs / hop))
    mag = gust[:, None] / np.sqrt(1 + (f / corner) ** 2)[None, :] * (f > 3)[None, :]
    return stft_noise(mag, rng, n)


def rain(part: str, d, n: int, fs: int) -> np.ndarray:
    """Rain: Poisson drops, each a click and a short decaying bubble tone (1.5-8 kHz)."""
    rng = np.random.default_rng(d.rng_seed(part))
    rate = d(part, "rain_drops_per_s")
    k = int(rng.poisson(rate * n / fs))
    y = np.zeros(n + 600)
    pos = rng.integers(0, n, k)
    amp = rng.lognormal(0, 0.7, k)
    np.add.at(y, pos, amp)
    tt = np.arange(600) / fs
    for fb in (1800.0, 3200.0, 5200.0, 7600.0):
        sel = rng.random(k) < 0.25
        imp = np.zeros(n + 600)
        np.add.at(imp, pos[sel], amp[sel] * 0.6)
        kern = np.sin(2 * math.pi * fb * tt) * np.exp(-tt / 0.0025)
        y += signal.fftconvolve(imp, kern)[: n + 600]
    return y[:n]


def self_noise(seed_rng, n: int, fs: int) -> np.ndarray:
    """Microphone self-noise: white with a 1/f rise below 300 Hz."""
    x = np.fft.rfft(seed_rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / fs)
    return np.fft.irfft(x * np.sqrt(1 + 300.0 / np.maximum(f, 5.0)), n)
