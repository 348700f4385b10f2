"""Event classifier: exhaust, siren, horn or other, from spectral features of the event's audio.

Features (computed only for events, from the raw samples of the event):

- ``tonal``: fraction of loud frames whose dominant peak (250-3000 Hz) stands >= 20 dB above the median
  spectrum and holds most of the energy (a siren or a horn; engines spread energy over many orders);
- ``sweep_oct``: range of the dominant pitch over the tonal frames (wail and yelp sweeps, hi-lo);
- ``sweep_rate``: median frame-to-frame pitch change, octaves per second (yelp is fast, wail slow);
- ``two_tone_56``: fraction of tonal frames with a second peak at 6/5 or 5/6 of the dominant one (the
  minor third of civil-defence sirens; car horns sit at a major third or fourth);
- ``engine``: harmonic salience of a low fundamental (20-320 Hz, 8 orders) in dB above the median;
- ``f0_move``: range of that fundamental over the event, octaves (engine orders follow rpm and Doppler);
- ``lf_frac``: share of the energy below 150 Hz (wind);
- ``duration_s``.

The scores are a softmax over hand-set linear logits of these features (a small, explainable model whose
numbers go into the evidence record).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.fft as sfft

CLASSES = ("exhaust", "siren", "horn", "other")
NFFT = 4096
HOP = 2048
MAX_SECONDS = 12.0  # long events are classified on the 12 s around their loudest part
NFFT_FAST = 1024
NFFT_ENGINE = 8192


@dataclass(frozen=True)
class Features:
    tonal: float
    sweep_oct: float
    sweep_rate: float
    two_tone_56: float
    engine: float
    f0_move: float
    lf_frac: float
    duration_s: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def _stft(x: np.ndarray, nfft: int, hop: int) -> np.ndarray:
    if x.size < nfft:
        x = np.pad(x, (0, nfft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, nfft)[::hop]
    spec = sfft.rfft(frames * np.hanning(nfft).astype(np.float32), axis=1)
    return (spec.real**2 + spec.imag**2).astype(np.float64)


def _peak_freq(p: np.ndarray, k: np.ndarray, df: float) -> np.ndarray:
    """Parabolic interpolation of the peak at bins k (in log power)."""
    k = np.clip(k, 1, p.shape[1] - 2)
    rows = np.arange(p.shape[0])
    a, b, c = (np.log(p[rows, k + d] + 1e-30) for d in (-1, 0, 1))
    den = a - 2 * b + c
    off = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(den == 0, 1, den), 0.0)
    return (k + np.clip(off, -0.5, 0.5)) * df


def _narrow(p: np.ndarray, k: np.ndarray, w: int, drop_db: float = 10.0) -> np.ndarray:
    """True where bin k is a local maximum standing ``drop_db`` above the bins ``w`` away on both sides."""
    n = p.shape[1]
    r = np.arange(p.shape[0])
    v = p[r, k]
    lo, hi = p[r, np.clip(k - w, 0, n - 1)], p[r, np.clip(k + w, 0, n - 1)]
    nb = np.maximum(p[r, np.clip(k - 1, 0, n - 1)], p[r, np.clip(k + 1, 0, n - 1)])
    g = 10 ** (drop_db / 10)
    return (v >= nb) & (v >= g * lo) & (v >= g * hi) & (k > w) & (k < n - 1 - w)


def features(x: np.ndarray, fs: int, peak: int | None = None) -> Features:
    """Features of one event's raw samples (full-scale units); ``peak``: sample index of the maximum."""
    x = np.asarray(x, dtype=np.float32)
    duration = x.size / fs
    cap = int(MAX_SECONDS * fs)
    if x.size > cap:
        c = x.size // 2 if peak is None else peak
        a = min(max(0, c - cap // 2), x.size - cap)
        x = x[a: a + cap]
    p = _stft(x, NFFT, HOP)
    df = fs / NFFT
    f = np.arange(p.shape[1]) * df
    e = p.sum(axis=1)
    loud = e >= e.max() * 10 ** (-1.5)  # frames within 15 dB of the loudest
    pl = p[loud]
    tot = pl[:, (f >= 20) & (f <= 8000)].sum(axis=1) + 1e-30
    lf_frac = float(np.median(pl[:, (f >= 20) & (f < 150)].sum(axis=1) / tot))

    # --- tonal peak 250..3000 Hz
    band = (f >= 250) & (f <= 3000)
    b0 = int(np.argmax(band))
    kpk = b0 + np.argmax(pl[:, band], axis=1)
    ref = np.median(pl[:, (f >= 150) & (f <= 5000)], axis=1) + 1e-30
    rows = np.arange(pl.shape[0])
    prom = 10 * np.log10(pl[rows, kpk] / ref)
    near = np.zeros_like(pl)
    for d in (-2, -1, 0, 1, 2):
        near[rows, np.clip(kpk + d, 0, pl.shape[1] - 1)] = pl[rows, np.clip(kpk + d, 0, pl.shape[1] - 1)]
    conc = near.sum(axis=1) / pl[:, (f >= 150) & (f <= 5000)].sum(axis=1).clip(1e-30)
    tonal_mask = (prom >= 20) & (conc >= 0.3) & _narrow(pl, kpk, 6)
    tonal = float(tonal_mask.mean())
    fpk = _peak_freq(pl, kpk, df)

    two = 0.0
    if tonal_mask.any():
        ft = fpk[tonal_mask]
        pt = pl[tonal_mask]
        r = np.arange(pt.shape[0])
        main = pt[r, np.clip(np.round(ft / df).astype(int), 0, p.shape[1] - 1)]
        hits = np.zeros(ft.size, dtype=bool)
        for ratio in (6 / 5, 5 / 6):
            kk = np.clip(np.round(ft * ratio / df).astype(int), 2, p.shape[1] - 3)
            cand3 = np.stack([pt[r, kk + d] for d in (-1, 0, 1)])
            loc_k = kk + np.argmax(cand3, axis=0) - 1
            v = pt[r, loc_k]
            is_peak = (v > pt[r, loc_k - 1]) & (v > pt[r, loc_k + 1])
            f2 = _peak_freq(pt, loc_k, df)
            strong = v >= main * 10 ** (-1.5)
            exact = np.abs(f2 / ft / ratio - 1) < 0.02
            hits |= is_peak & strong & exact & (10 * np.log10(v / ref[tonal_mask]) >= 15)
        two = float(hits.sum() / max(pl.shape[0], 1))

    # --- pitch track with a short window (yelp sweeps smear a long one)
    sweep_oct = sweep_rate = 0.0
    pf = _stft(x, NFFT_FAST, NFFT_FAST // 2)
    dff = fs / NFFT_FAST
    ff = np.arange(pf.shape[1]) * dff
    bandf = (ff >= 250) & (ff <= 3000)
    ef = pf.sum(axis=1)
    pfl = pf[ef >= ef.max() * 10 ** (-1.5)]
    rf = np.arange(pfl.shape[0])
    kf = int(np.argmax(bandf)) + np.argmax(pfl[:, bandf], axis=1)
    reff_band = pfl[:, (ff >= 150) & (ff <= 5000)]
    promf = 10 * np.log10(pfl[rf, kf] / (np.median(reff_band, axis=1) + 1e-30))
    nearf = sum(pfl[rf, np.clip(kf + d, 0, pfl.shape[1] - 1)] for d in (-1, 0, 1))
    concf = nearf / (reff_band.sum(axis=1) + 1e-30)
    tf = (promf >= 15) & (concf >= 0.3) & _narrow(pfl, kf, 4)
    tonal_fast = float(tf.mean())
    if tf.sum() >= 4 and tonal_fast >= 0.3:
        lp = np.log2(_peak_freq(pfl, kf, dff)[tf])
        sweep_oct = float(np.percentile(lp, 95) - np.percentile(lp, 5))
        sweep_rate = float(np.median(np.abs(np.diff(lp)))) * fs / (NFFT_FAST // 2)

    # --- engine orders: comb salience of a low fundamental (harmonic peaks above the half-way valleys)
    pe = _stft(x, NFFT_ENGINE, NFFT_ENGINE // 2)
    ee = pe.sum(axis=1)
    pe = pe[ee >= ee.max() * 10 ** (-1.5)]
    dfe = fs / NFFT_ENGINE
    cand = np.arange(25.0, 320.0, dfe / 2)
    logp = np.log10(pe + 1e-30)
    sal = np.zeros((pe.shape[0], cand.size))
    n_h = 8
    nb = pe.shape[1]
    for h in range(1, n_h + 1):
        kk = np.clip(np.round(cand * h / dfe).astype(int), 1, nb - 2)
        lo = np.clip(np.round(cand * (h - 0.5) / dfe).astype(int), 0, nb - 1)
        hi = np.clip(np.round(cand * (h + 0.5) / dfe).astype(int), 0, nb - 1)
        v = np.maximum(np.maximum(logp[:, kk], logp[:, kk - 1]), logp[:, kk + 1])
        sal += v - 0.5 * (logp[:, lo] + logp[:, hi])
    sal = 10 * sal / n_h
    best = sal.max(axis=1)
    f0 = cand[np.argmax(sal, axis=1)]
    engine = float(np.median(best))
    strong = best >= np.percentile(best, 50)
    f0_move = float(np.ptp(np.log2(f0[strong]))) if strong.sum() >= 2 else 0.0
    return Features(tonal, sweep_oct, sweep_rate, two, engine, f0_move, lf_frac, duration)


def scores(ft: Features) -> dict[str, float]:
    """Class probabilities from features (softmax over hand-set logits)."""
    sweep = float(np.clip((ft.sweep_oct - 0.15) / 0.35, -1.0, 1.0))
    long = 1.0 if ft.duration_s > 12 else 0.0
    windy = 20 * max(ft.lf_frac - 0.8, 0.0)
    logits = {
        "exhaust": 0.4 * (ft.engine - 12) - 6 * ft.tonal - windy - 3 * long,
        "siren": 6 * ft.tonal - 4 + 6 * ft.two_tone_56 + 8 * sweep + 2 * long,
        "horn": 6 * ft.tonal - 3 - 8 * max(sweep, 0.0) - 6 * ft.two_tone_56 - 2 * max(ft.duration_s - 3, 0),
        "other": windy,
    }
    m = max(logits.values())
    ex = {k: float(np.exp(v - m)) for k, v in logits.items()}
    s = sum(ex.values())
    return {k: round(ex[k] / s, 4) for k in CLASSES}


def classify(x: np.ndarray, fs: int, peak: int | None = None) -> tuple[str, dict[str, float], Features]:
    ft = features(x, fs, peak)
    sc = scores(ft)
    return max(sc, key=lambda k: sc[k]), sc, ft
