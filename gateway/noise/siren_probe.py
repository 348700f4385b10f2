"""Is an emergency siren's periodic call sounding inside a loud exhaust event? (``Features.siren_inside``)

The local tonal detector and ``features``' tonal tests look at the *dominant* peak of a frame and want it to hold
a large share of the band's energy; a siren 0-9 dB under a loud exhaust is never that peak. What such a siren
still has is its *call*: emergency sirens repeat a pattern with a fixed cycle (yelp and rumbler: a sweep over
an octave or more every 0.1-0.5 s; hi-lo and two-tone: two pitches 1.1-1.5x apart alternating every 0.3-1.3 s),
and in the narrow bins the sweep crosses, the tone stands well over the exhaust's own level in that bin (a siren
5 dB under a broadband exhaust in A-level, concentrated in one 94 Hz bin, is 10-20 dB over the exhaust's power
there). An exhaust's spectrum is not periodic that way: its roar fluctuates at random, its orders follow rpm
(a pass-by swell, a rev, a gear change: once, or at irregular intervals), and an amplitude modulation of the
roar lifts all bins at once.

``periodic_call`` takes short frames (``WIN_S``: 10.7 ms, so a yelp moves about one bin per frame), whitens the
300-2500 Hz band twice (each frame against its own median across the band: the pass-by's swell and the roar's
AM go; each bin against its own median over the event: the exhaust's spectral shape and its steady orders go),
marks the cells that stand ``ON_DB`` over that (a tone crossing the bin), removes each bin's slow trend
(``TREND_S``) and sums the bins' autocorrelations over time. A call makes a peak at its cycle period; the
returned *strength* is that peak's rise over the lowest correlation at any shorter lag (a periodic sweep or
alternation swings negative at the half cycle; chance fluctuations of the roar make no such swing). Cycles
from ``LAG_S`` are looked for, and at least ``MIN_CYCLES`` must fit in the event's audio.

A call only counts when its tone is loud: the A-weighted power of the marked cells over 125 ms (Fast) within
``SHARE_DB`` of the loudest 125 ms of the whole spectrum (the event's LAFmax) -- a distant siren 20 dB under a
pass-by is heard, but it did not make the level the case would state (the bench counts a siren as the cause
within 10 dB). ``siren_inside`` returns the strength of a loud call (0 without one). Not a model input: the
committed model and its scores do not change; ``rules.siren_inside`` blocks enforcement at
``rules.SIREN_INSIDE``. Cost: one 512-point FFT per 10.7 ms of the event's (at most 8 s of) audio, per event.

Not heard: a wail (a 2-6 s cycle: too few cycles in a pass-by; a wail that holds near one pitch through the
event is a steady tone), and a siren whose tone sits inside an engine order's bins.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from gateway.noise.weighting import a_weighting_db

WIN_S = 0.0107  # frame length (and hop), s: a yelp's sweep (~10 kHz/s) moves about one bin per frame
F_LO, F_HI = 300.0, 2500.0  # where emergency sirens' fundamentals sweep (450-1900 Hz in the references)
ON_DB = 9.0  # a cell stands this far over its frame's and its bin's typical level: a tone crosses the bin
TREND_S = 1.0  # each bin's slow trend (moving mean) is removed: a pass-by's swell, an rpm ramp
LAG_S = (0.09, 1.3)  # cycle periods looked for: yelp 0.1-0.5 s; hi-lo and two-tone 0.5-1.3 s
MIN_CYCLES = 3.0  # cycles of the period that must fit in the event's audio
FAST_S = 0.125  # the level meter's Fast time constant: the tone's and the event's levels are compared over it
SHARE_DB = -8.0  # the tone's A-level within this of the event's loudest 125 ms (the bench's cause rule: 10 dB)


def _spectra(x: np.ndarray, nfft: int) -> np.ndarray:
    """Hann power spectra of consecutive, non-overlapping ``nfft``-sample frames of ``x``."""
    n = x.size // nfft
    frames = x[: n * nfft].reshape(n, nfft) * np.hanning(nfft).astype(np.float32)
    s = sfft.rfft(frames, axis=1)
    return s.real**2 + s.imag**2


def _moving_mean(a: np.ndarray, w: int) -> np.ndarray:
    """Centred moving mean over axis 0 (window ``w`` rows, shortened at the ends)."""
    c = np.concatenate([np.zeros((1, a.shape[1])), np.cumsum(a, axis=0)])
    i = np.arange(a.shape[0])
    lo, hi = np.maximum(i - w // 2, 0), np.minimum(i + w - w // 2, a.shape[0])
    return (c[hi] - c[lo]) / (hi - lo)[:, None]


def periodic_call(x: np.ndarray, fs: int) -> tuple[float, float, float]:
    """(strength, cycle period s, tone level dB re the event's loudest 125 ms) of the strongest periodic pattern
    of tones crossing the 300-2500 Hz bins of ``x`` (raw samples); (0, 0, -inf) when none can be measured."""
    nfft = 1 << int(round(np.log2(WIN_S * fs)))
    dt = nfft / fs
    none = (0.0, 0.0, float("-inf"))
    p = _spectra(np.asarray(x, dtype=np.float32), nfft)
    n = p.shape[0]
    lo, hi = int(LAG_S[0] / dt), min(int(LAG_S[1] / dt), int(n / MIN_CYCLES))
    if hi <= lo + 2:
        return none
    f = np.arange(p.shape[1]) * fs / nfft
    band = slice(int(np.ceil(F_LO / f[1])), int(F_HI / f[1]) + 1)
    pb = p[:, band]
    lv = 10 * np.log10(pb + 1e-30)
    lv -= np.median(lv, axis=1, keepdims=True)  # each frame against its median across the band (swell, AM)
    lv -= np.median(lv, axis=0)  # each bin against its median over the event (the exhaust's spectrum, orders)
    on = lv >= ON_DB
    y = on.astype(np.float64)
    y -= _moving_mean(y, max(3, int(TREND_S / dt)))
    spec = sfft.rfft(y, n=2 * n, axis=0)
    ac = sfft.irfft(spec.real**2 + spec.imag**2, n=2 * n, axis=0)[:n].sum(axis=1)
    if ac[0] <= 0:
        return none
    ac = ac / ac[0] * n / (n - np.arange(n))  # normalised, unbiased (each lag over the frames it overlaps)
    seg = ac[lo:hi]
    mx = np.flatnonzero((seg >= ac[lo - 1: hi - 1]) & (seg >= ac[lo + 1: hi + 1])) + lo  # local maxima
    if mx.size == 0:
        return none
    prom = ac[mx] - np.minimum.accumulate(ac)[mx]  # rise over the lowest correlation at any shorter lag
    j = int(mx[np.argmax(prom)])
    # the tone's level: the A-weighted power of the marked cells over 125 ms against the whole spectrum's
    wa = 10 ** (a_weighting_db(f) / 10)
    tone = (np.where(on, pb, 0.0) * wa[band]).sum(axis=1)
    tot = (p * wa).sum(axis=1)
    m = max(1, int(FAST_S / dt))
    kern = np.ones(m) / m
    top = float(np.convolve(tot, kern, "valid").max())
    level = float(np.convolve(tone, kern, "valid").max())
    db = 10 * np.log10(level / top) if level > 0 and top > 0 else float("-inf")
    return float(prom.max()), j * dt, db


def siren_inside(x: np.ndarray, fs: int) -> float:
    """The strength of a loud siren call in the event's audio ``x`` (0 when none, or when its tone is more than
    ``SHARE_DB`` under the event's loudest 125 ms)."""
    strength, _, db = periodic_call(x, fs)
    return strength if db >= SHARE_DB else 0.0
