"""Time-domain and tone-pair descriptors of an event (used by ``gateway.noise.features``).

- ``texture``: (pulse, crackle) of the loudest second;
- ``onset``: the steepest sustained rise near the maximum, dB;
- ``pair_share``: simultaneous narrow tone pairs at 1.08-1.45x (two-tone horns).
"""

from __future__ import annotations

import numpy as np

from gateway.noise.spectrum import median1

ENV_DECIM = 24  # envelope rate fs / 24 (2 kHz at 48 kHz): firing rates up to 400 Hz are resolved


def texture(x: np.ndarray, fs: int) -> tuple[float, float]:
    """(pulse, crackle) of the loudest second: an exhaust is a train of blow-down pulses, often with pops.

    ``pulse``: the highest normalised autocorrelation, at lags of 2.5-40 ms (25-400 Hz), of the envelope of the
    first difference (a high-frequency emphasis, so the pulses' broadband edges dominate) decimated to fs/24,
    median over half-second windows. Steady tones give a flat envelope and tyre or wind roar an aperiodic one.
    ``crackle``: log10 of the kurtosis of that first difference (3 for Gaussian noise, less for tones)."""
    d = np.diff(x[: x.size - x.size % ENV_DECIM]) if x.size > fs // 2 else np.zeros(0, dtype=np.float32)
    if d.size < fs // 2:
        return 0.0, 0.0
    e = np.abs(d[: d.size - d.size % ENV_DECIM]).reshape(-1, ENV_DECIM).mean(axis=1)
    fe = fs / ENV_DECIM
    n1 = int(fe)  # the loudest second of the envelope
    if e.size > n1:
        c = np.concatenate([[0.0], np.cumsum(e * e, dtype=np.float64)])
        a = int(np.argmax(c[n1:] - c[:-n1]))
        e = e[a: a + n1]
        d = d[a * ENV_DECIM: (a + n1) * ENV_DECIM]
    sq = np.square(d, dtype=np.float64)
    m2 = float(np.mean(sq)) + 1e-30
    crackle = float(np.log10(max(float(np.mean(sq * sq)) / (m2 * m2), 1e-3)))
    w = int(fe / 2)
    segs = e[: e.size - e.size % w].reshape(-1, w)
    segs = segs - segs.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(segs, 2 * w, axis=1)
    ac = np.fft.irfft(spec.real**2 + spec.imag**2, axis=1)[:, :w]
    ac = ac / (ac[:, :1] + 1e-30)
    lo, hi = int(fe / 400), int(fe / 25) + 1
    pulse = float(median1(ac[:, lo:hi].max(axis=1))) if segs.shape[0] else 0.0
    return pulse, crackle


def onset(x: np.ndarray, fs: int) -> float:
    """Steepest *sustained* rise, dB: the mean power of the 80 ms after a step and of the 80 ms after that (the
    lower of the two) over the mean power of the 100 ms before it, among steps whose level after is within 20
    dB of the loudest. A horn switches on and stays on (a beep lasts >= 0.15 s); a pass-by swells over
    seconds; a crackle pop is over within a few ms, and a slow engine's firing pulses (a single at 2,400 rpm
    fires every 50 ms) average out over these windows, so neither is a sustained rise however spiky the 10 ms
    level is."""
    m = fs // 100
    n = x.size // m
    if n < 30:
        return 0.0
    pw = np.mean(np.square(x[: n * m].reshape(n, m), dtype=np.float64), axis=1) + 1e-20
    c = np.concatenate([[0.0], np.cumsum(pw)])
    i = np.arange(10, n - 16)
    before = (c[i] - c[i - 10]) / 10
    after = np.minimum(c[i + 8] - c[i], c[i + 16] - c[i + 8]) / 8
    lv_after = 10 * np.log10(after)
    rise = lv_after - 10 * np.log10(before)
    loud = lv_after >= lv_after.max() - 20
    return float(rise[loud].max()) if loud.any() else 0.0


def pair_share(p: np.ndarray, k: np.ndarray, df: float, prom: np.ndarray) -> float:
    """Share of tonal frames with a second narrow peak, within 15 dB of the main one, at 1.08-1.45 times
    (or 1/1.45-1/1.08 of) its frequency: two simultaneous horn tones (or a 5:6 siren pair)."""
    if p.shape[0] == 0:
        return 0.0
    n = p.shape[1]
    rows = np.arange(p.shape[0])
    main = p[rows, k]
    bins = np.arange(n)
    rel = bins[None, :] / np.maximum(k, 1)[:, None]
    window = ((rel >= 1.08) & (rel <= 1.45)) | ((rel >= 1 / 1.45) & (rel <= 1 / 1.08))
    pad = np.pad(p, ((0, 0), (4, 4)), mode="edge")
    local_max = (p >= pad[:, 3:-5]) & (p >= pad[:, 5:-3])
    narrow = p >= 10 * np.maximum(pad[:, :-8], pad[:, 8:])
    strong = p >= main[:, None] * 10 ** (-1.5)
    hit = (window & local_max & narrow & strong).any(axis=1)
    return float(hit.mean())
