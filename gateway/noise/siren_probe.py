"""Is an emergency siren's call sounding inside a loud exhaust event? (``Features.siren_inside``)

The local tonal detector and ``features``' tonal tests look at the *dominant* peak of a frame and want it to hold
a large share of the band's energy; a siren 0-9 dB under a loud exhaust is never that peak. What such a siren
still has is its *call*: emergency sirens repeat a pattern with a fixed cycle (yelp and rumbler: a sweep over
an octave or more every 0.1-0.5 s; hi-lo and two-tone: two pitches 1.1-1.5x apart alternating, cycles of
0.5-2.6 s; a fast wail: 2-2.6 s), and in the narrow bins the call crosses, its tone stands well over the
exhaust's own level there (a siren 5 dB under a broadband exhaust in A-level, concentrated in one 94 Hz bin, is
10-20 dB over the exhaust's power in that bin). An exhaust's spectrum is not periodic that way: its roar
fluctuates at random, its orders follow rpm (a swell, a rev, a gear change: once, or at irregular intervals),
and an amplitude modulation of the roar lifts all bins at once.

``_call`` looks at one time scale, on the power spectra ``features`` already computed for the event (only its
frames within 15 dB of the loudest; the others count as quiet): ``SHORT``, its 21 ms frames (16 ms hop; a
yelp's sweep stays within two or three bins), cycles of 0.09-0.6 s; ``LONG``, its 85 ms frames (42.7 ms hop; a
hi-lo's held tone stands higher over the roar), cycles of 0.5-2.6 s; adjacent bins are summed in pairs (94 Hz
and 23 Hz). It whitens the 300-2500 Hz band twice (each frame against its median across the band: the
pass-by's swell and the roar's AM go; each bin against its ``BIN_PCT`` percentile over the event: the exhaust's
spectral shape and its steady orders go, while a hi-lo tone that holds its bin half the time does not set the
bin's reference), marks the cells that stand ``ON_DB`` over that (a tone crossing the bin; the roar's own
cells pass 12 dB over their 25th percentile about 1 % of the time), removes each bin's slow trend (1 s, 3 s at
the long scale) and sums the bins' autocorrelations over time. A call makes a peak at its cycle; its
*strength* is that peak's rise over the lowest correlation at any shorter lag (a periodic sweep or alternation
swings negative at the half cycle; chance fluctuations of the roar make no such swing), and its cycle the
shortest lag whose peak is within ``PERIOD_TOL`` of the strongest (the peaks at 2 and 3 cycles repeat it).
Calls weaker than ``MIN_STRENGTH`` are not examined further. At least
``MIN_CYCLES`` cycles must fit in the audio. The call's own cells are the marked ones that were marked again
one cycle earlier or later (+-1 frame) and are not marked both half a cycle before and after (the call has
left the bin by then; a held line has not). A call counts when

- its tone is loud: the ``LEVEL_PCT`` percentile over the event of the A-weighted power of its cells over
  125 ms (Fast) is within ``SHARE_DB`` of the loudest 125 ms of the whole spectrum (the event's LAFmax; the
  bench counts a siren as the cause within 10 dB): a distant siren 20 dB under a pass-by is heard, but it did
  not make the level the case would state (a percentile, not the maximum: the roar's chance cells that join
  the call at the loudest moment would otherwise lift a distant siren's level to -4 dB);
- it moves in pitch: in at least ``MOVE_SHARE`` of the frames, the call's cells and those half a cycle away
  lie ``MOVE_OCT`` apart (a sweep, or the other tone of a pair); an engine's orders pulsing together (roar AM,
  two engines beating) light the same bins and leave the others dark half a cycle later;
- it is not an engine's comb: at most ``COMB_MAX`` of the call's frames hold three call lines (a run of
  adjacent cells is one line) with two equal spacings (within 10 % or a bin) under ``COMB_HZ``: an engine
  whose rpm rises and falls periodically (throttle blips, a pulsed throttle) sweeps all its orders in a
  periodic sawtooth, but they stay lines a firing frequency apart; a siren's partials lie a 450-1900 Hz
  fundamental or two apart. (``harmonics.series_member`` cannot tell here: under a loud exhaust every peak has
  some local maxima at +-f0 for one of its candidate f0s.)

``siren_inside`` returns the strongest counting call's strength (0 without one). Not a model input: the
committed model and its scores do not change; ``rules.siren_inside`` blocks enforcement at
``rules.SIREN_INSIDE``. Cost: no transform of its own; per event, two autocorrelations of the band's marked
cells (FFTs along time) and a few passes over them (about 1 % of ``bench.dsp_rtf``'s pipeline).

Not heard: a slow wail (a 3-6 s cycle: too few cycles in a pass-by; a wail that holds near one pitch through
the event is a steady tone), and a siren whose fundamental is lost among an engine's orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from gateway.noise.spectrum import median_rows
from gateway.noise.weighting import a_weights


@dataclass(frozen=True)
class Scale:
    lags: tuple[float, float]  # cycle periods looked for, s
    trend_s: float  # each bin's slow trend (moving mean over this) is removed: a pass-by's swell, an rpm ramp
    merge: int  # adjacent bins summed


SHORT = Scale((0.09, 0.6), 1.0, 2)  # yelp and rumbler sweeps, on 21 ms frames (16 ms hop), 94 Hz bins
LONG = Scale((0.5, 2.6), 3.0, 2)  # hi-lo and two-tone alternations, on 85 ms frames (42.7 ms hop), 23 Hz bins
F_LO, F_HI = 300.0, 2500.0  # where emergency sirens' fundamentals lie (450-1900 Hz in the references)
ON_DB = 12.0  # a cell stands this far over its frame's and its bin's typical level: a tone crosses the bin
BIN_PCT = 25.0  # a bin's typical level over the event: this percentile (a hi-lo tone holds its bin half the time)
MIN_CYCLES = 2.5  # cycles of the period that must fit in the event's audio
PERIOD_TOL = 0.8  # the shortest lag whose peak is this close to the strongest is the cycle (2P, 3P repeat it)
MIN_STRENGTH = 0.3  # weaker calls are not examined further (``rules.SIREN_INSIDE`` blocks from this strength)
FAST_S = 0.125  # the level meter's Fast time constant: the tone's and the event's levels are compared over it
LEVEL_PCT = 90.0  # the call's level: this percentile of its 125 ms levels over the event (a siren holds its level)
SHARE_DB = -11.0  # the call's A-level within this of the event's loudest 125 ms (the bench's cause rule is 10 dB;
#                   the estimate reads 1-3 dB low: partials outside 300-2500 Hz, a percentile, not the maximum)
MOVE_OCT = 0.1  # the call's pitch half a cycle away differs by at least this (a hi-lo pair: 0.26-0.54 octave)
MOVE_SHARE = 0.15  # ... in at least this share of the frames
COMB_MAX = 0.1  # at most this share of the call's frames may show an engine's comb of orders
COMB_HZ = 300.0  # engine orders lie f0 apart (30-300 Hz in the band's frames)


@dataclass(frozen=True)
class Call:
    strength: float = 0.0  # rise of the autocorrelation peak over the lowest correlation at shorter lags
    period_s: float = 0.0
    level_db: float = float("-inf")  # the call's A-level re the event's loudest 125 ms
    moving: float = 0.0  # share of frames whose call cells moved MOVE_OCT from half a cycle earlier
    comb: float = 1.0  # share of the call's frames that hold a comb of engine orders (``_comb_share``)

    def counts(self) -> bool:
        return self.level_db >= SHARE_DB and self.moving >= MOVE_SHARE and self.comb <= COMB_MAX


def _moving_mean(a: np.ndarray, w: int) -> np.ndarray:
    """Centred moving mean over axis 0 (window ``w`` rows, shortened at the ends)."""
    c = np.concatenate([np.zeros((1, a.shape[1])), np.cumsum(a, axis=0)])
    i = np.arange(a.shape[0])
    lo, hi = np.maximum(i - w // 2, 0), np.minimum(i + w - w // 2, a.shape[0])
    return (c[hi] - c[lo]) / (hi - lo)[:, None]


def _shift(a: np.ndarray, d: int) -> np.ndarray:
    """``a`` (frames x bins, bool) moved by ``d`` frames: row t holds row t - d (False where there is none)."""
    out = np.zeros_like(a)
    if d >= 0:
        out[d:] = a[: a.shape[0] - d]
    else:
        out[:d] = a[-d:]
    return out


def _call(p: np.ndarray, frame_no: np.ndarray, df: float, dt: float, scale: Scale) -> Call:
    """The strongest periodic call in the power spectra ``p`` (rows at frame numbers ``frame_no``, hop ``dt`` s,
    bins ``df`` Hz wide) at one time ``scale``."""
    if p.shape[0] < 4:
        return Call()
    n = int(frame_no[-1] - frame_no[0]) + 1  # the frames' grid (frames not transformed were quiet: no cells)
    lo, hi = max(2, int(scale.lags[0] / dt)), min(int(scale.lags[1] / dt), int(n / MIN_CYCLES))
    if hi <= lo + 2:
        return Call()
    rows = frame_no - frame_no[0]
    tot = np.zeros(n)
    tot[rows] = p @ a_weights(p.shape[1], df)  # each frame's A-weighted power
    m = scale.merge
    k0, k1 = int(np.ceil(F_LO / df / m)) * m, (int(F_HI / df) // m + 1) * m
    pb = p[:, k0:k1].reshape(p.shape[0], -1, m).sum(axis=2)  # the band, adjacent bins merged
    dfb = df * m
    fb = (np.arange(pb.shape[1]) * m + k0 + 0.5 * (m - 1)) * df
    lv = 10 * np.log10(pb + 1e-30)
    lv -= median_rows(lv)[:, None]  # each frame against its median across the band (swell, AM)
    kth = int(BIN_PCT / 100 * (lv.shape[0] - 1))
    lv -= np.partition(lv, kth, axis=0)[kth]  # each bin against its typical level (the exhaust's spectrum, orders)
    on = np.zeros((n, pb.shape[1]), dtype=bool)
    on[rows] = lv >= ON_DB
    y = on.astype(np.float32)
    y -= _moving_mean(y, max(3, int(scale.trend_s / dt)))
    nf = sfft.next_fast_len(n + hi + 1, real=True)  # zero padding: no wrap-around at the lags looked at
    spec = sfft.rfft(y, n=nf, axis=0)
    ac = sfft.irfft((spec.real**2 + spec.imag**2).sum(axis=1), n=nf)[: hi + 2]  # the bins' autocorrelations, summed
    if ac[0] <= 0:
        return Call()
    ac = ac / ac[0] * n / (n - np.arange(ac.size))  # normalised, unbiased (each lag over the frames it overlaps)
    seg = ac[lo:hi]
    mx = np.flatnonzero((seg >= ac[lo - 1: hi - 1]) & (seg >= ac[lo + 1: hi + 1])) + lo  # local maxima
    if mx.size == 0:
        return Call()
    prom = ac[mx] - np.minimum.accumulate(ac)[mx]  # rise over the lowest correlation at any shorter lag
    j = int(mx[np.flatnonzero(prom >= PERIOD_TOL * prom.max())[0]])  # the cycle, not a multiple of it
    if prom.max() < MIN_STRENGTH:
        return Call(float(prom.max()), j * dt)  # too weak to block a case: its cells are not examined
    half = max(1, j // 2)
    again = np.zeros_like(on)
    for d in (j - 1, j, j + 1):
        again |= _shift(on, d) | _shift(on, -d)
    call = on & again & ~(_shift(on, half) & _shift(on, -half))
    if not call.any():
        return Call(float(prom.max()), j * dt)
    # level: the call's cells (A-weighted) over 125 ms against the whole spectrum's loudest 125 ms
    wb = np.interp(fb, np.arange(p.shape[1]) * df, a_weights(p.shape[1], df))
    cells = np.zeros(n)
    cells[rows] = (np.where(call[rows], pb, 0.0) * wb).sum(axis=1)
    kern = np.ones(max(1, int(round(FAST_S / dt))))
    tone = float(np.percentile(np.convolve(cells, kern, "valid"), LEVEL_PCT))
    top = float(np.convolve(tot, kern, "valid").max())
    level = 10 * np.log10(tone / top) if tone > 0 and top > 0 else float("-inf")
    # pitch movement: the mean log-frequency of a frame's call cells against that half a cycle earlier
    cnt = call.sum(axis=1)
    has = cnt > 0
    cen = (call * np.log2(fb)).sum(axis=1) / np.maximum(cnt, 1)
    moved = has[half:] & has[:-half] & (np.abs(cen[half:] - cen[:-half]) >= MOVE_OCT)
    moving = float(moved.sum()) / n
    # engine orders: frames whose call cells form three or more equally spaced lines less than COMB_HZ apart
    comb = _comb_share(call, dfb)
    return Call(float(prom.max()), j * dt, level, moving, comb)


def _comb_share(call: np.ndarray, df: float) -> float:
    """Share of the frames with call cells in which those cells (each run of adjacent cells one line, at its
    centre) hold three consecutive lines with two equal spacings (within 10 %, or a bin) under ``COMB_HZ``: the
    orders of an engine (a siren's partials lie a fundamental or two apart: 450 Hz and more)."""
    n, b = call.shape
    pad = np.zeros((n, b + 2), dtype=np.int8)
    pad[:, 1:-1] = call
    d = np.diff(pad, axis=1)
    r0, c0 = np.nonzero(d == 1)  # run starts (row-major: sorted by frame, then frequency)
    _, c1 = np.nonzero(d == -1)  # run ends (exclusive), in the same order
    has = call.any(axis=1)
    if r0.size < 3:
        return 0.0
    centre = 0.5 * (c0 + c1 - 1) * df
    gap = np.diff(centre)
    same = r0[1:] == r0[:-1]
    small = same & (gap <= COMB_HZ)
    eq = small[1:] & small[:-1] & (np.abs(gap[1:] - gap[:-1]) <= np.maximum(df, 0.1 * gap[1:]))
    comb_rows = np.unique(r0[1:-1][eq])
    return comb_rows.size / max(int(has.sum()), 1)


def calls(short: tuple, long: tuple) -> list[Call]:
    """The strongest call at each time scale; ``short`` and ``long``: (power spectra, frame numbers, bin width Hz,
    hop s) of the event's 21 ms and 85 ms frames (``features`` computes them for its own tests)."""
    return [_call(p, np.asarray(no), df, dt, sc) for (p, no, df, dt), sc in ((short, SHORT), (long, LONG))]


def siren_inside(short: tuple, long: tuple) -> float:
    """The strength of the strongest call that counts (loud, moving in pitch, not an engine's orders); 0 when
    there is none. Arguments as ``calls``."""
    return max([c.strength for c in calls(short, long) if c.counts()], default=0.0)
