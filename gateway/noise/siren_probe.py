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

``_call`` looks at one time scale: non-overlapping Hann frames (``SHORT``: 10.7 ms, a yelp moves about one bin
per frame, cycles of 0.09-0.6 s; ``LONG``: 42.7 ms, a held tone of a hi-lo stands 6 dB higher over the roar,
cycles of 0.5-2.6 s). It whitens the 300-2500 Hz band twice (each frame against its median across the band: the
pass-by's swell and the roar's AM go; each bin against its ``BIN_PCT`` percentile over the event: the exhaust's
spectral shape and its steady orders go, while a hi-lo tone that holds its bin half the time does not set the
bin's reference), marks the cells that stand ``ON_DB`` over that (a tone crossing the bin; the roar's own
cells pass 12 dB over their 25th percentile about 1 % of the time), removes each bin's slow trend (1 s, 3 s at
the long scale) and sums the bins' autocorrelations over time. A call makes a peak at its cycle; its
*strength* is that peak's rise over the lowest correlation at any shorter lag (a periodic sweep or alternation
swings negative at the half cycle; chance fluctuations of the roar make no such swing). At least
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
``rules.SIREN_INSIDE``. Cost: per event, one 512-point FFT per 10.7 ms and one 2048-point FFT per 42.7 ms of
its (at most 8 s of) audio, plus two autocorrelations of the band.

Not heard: a slow wail (a 3-6 s cycle: too few cycles in a pass-by; a wail that holds near one pitch through
the event is a steady tone), and a siren whose fundamental is lost among an engine's orders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from gateway.noise.weighting import a_weighting_db

SHORT = (0.0107, (0.09, 0.6), 1.0)  # (frame s, cycle periods s, trend s): yelp and rumbler sweeps
LONG = (0.0427, (0.5, 2.6), 3.0)  # hi-lo and two-tone alternations, a fast wail
F_LO, F_HI = 300.0, 2500.0  # where emergency sirens' fundamentals lie (450-1900 Hz in the references)
ON_DB = 12.0  # a cell stands this far over its frame's and its bin's typical level: a tone crosses the bin
BIN_PCT = 25.0  # a bin's typical level over the event: this percentile (a hi-lo tone holds its bin half the time)
MIN_CYCLES = 2.5  # cycles of the period that must fit in the event's audio
FAST_S = 0.125  # the level meter's Fast time constant: the tone's and the event's levels are compared over it
LEVEL_PCT = 90.0  # the call's level: this percentile of its 125 ms levels over the event (a siren holds its level)
SHARE_DB = -10.0  # the call's A-level within this of the event's loudest 125 ms (the bench's cause rule)
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


def _nfft(fs: int, win_s: float) -> int:
    return 1 << int(round(np.log2(win_s * fs)))


_WINDOWS: dict[int, np.ndarray] = {}


def _spectra(x: np.ndarray, nfft: int) -> np.ndarray:
    """Hann power spectra (float32) of consecutive, non-overlapping ``nfft``-sample frames of ``x``."""
    w = _WINDOWS.get(nfft)
    if w is None:
        w = _WINDOWS.setdefault(nfft, np.hanning(nfft).astype(np.float32))
    n = x.size // nfft
    s = sfft.rfft(x[: n * nfft].reshape(n, nfft) * w, axis=1, overwrite_x=True)
    p = np.square(s.real)
    p += np.square(s.imag)
    return p


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


def _call(p: np.ndarray, fs: int, nfft: int, lags: tuple[float, float], trend_s: float) -> Call:
    """The strongest periodic call in the power spectra ``p`` (frames of ``nfft`` samples), cycles in ``lags`` (s),
    each bin's trend over ``trend_s`` removed."""
    n = p.shape[0]
    dt = nfft / fs
    lo, hi = max(2, int(lags[0] / dt)), min(int(lags[1] / dt), int(n / MIN_CYCLES))
    if hi <= lo + 2:
        return Call()
    df = fs / nfft
    band = slice(int(np.ceil(F_LO / df)), int(F_HI / df) + 1)
    pb = p[:, band]
    lv = 10 * np.log10(pb + 1e-30)
    lv -= np.median(lv, axis=1, keepdims=True)  # each frame against its median across the band (swell, AM)
    lv -= np.percentile(lv, BIN_PCT, axis=0)  # each bin against its typical level (the exhaust's spectrum, orders)
    on = lv >= ON_DB
    y = on.astype(np.float64)
    y -= _moving_mean(y, max(3, int(trend_s / dt)))
    spec = sfft.rfft(y, n=2 * n, axis=0)
    ac = sfft.irfft(spec.real**2 + spec.imag**2, n=2 * n, axis=0)[:n].sum(axis=1)
    if ac[0] <= 0:
        return Call()
    ac = ac / ac[0] * n / (n - np.arange(n))  # normalised, unbiased (each lag over the frames it overlaps)
    seg = ac[lo:hi]
    mx = np.flatnonzero((seg >= ac[lo - 1: hi - 1]) & (seg >= ac[lo + 1: hi + 1])) + lo  # local maxima
    if mx.size == 0:
        return Call()
    prom = ac[mx] - np.minimum.accumulate(ac)[mx]  # rise over the lowest correlation at any shorter lag
    j = int(mx[np.argmax(prom)])
    half = max(1, j // 2)
    again = np.zeros_like(on)
    for d in (j - 1, j, j + 1):
        again |= _shift(on, d) | _shift(on, -d)
    call = on & again & ~(_shift(on, half) & _shift(on, -half))
    if not call.any():
        return Call(float(prom.max()), j * dt)
    # level: the call's cells (A-weighted) over 125 ms against the whole spectrum's loudest 125 ms
    f = np.arange(p.shape[1]) * df
    wa = (10 ** (a_weighting_db(f) / 10)).astype(np.float32)
    kern = np.ones(max(1, int(round(FAST_S / dt))))
    tone = float(np.percentile(np.convolve((np.where(call, pb, 0.0) * wa[band]).sum(axis=1), kern, "valid"), LEVEL_PCT))
    top = float(np.convolve(p @ wa, kern, "valid").max())
    level = 10 * np.log10(tone / top) if tone > 0 and top > 0 else float("-inf")
    # pitch movement: the mean log-frequency of a frame's call cells against that half a cycle earlier
    cnt = call.sum(axis=1)
    has = cnt > 0
    cen = (call * np.log2(f[band])).sum(axis=1) / np.maximum(cnt, 1)
    moved = has[half:] & has[:-half] & (np.abs(cen[half:] - cen[:-half]) >= MOVE_OCT)
    moving = float(moved.sum()) / n
    # engine orders: frames whose call cells form three or more equally spaced lines less than COMB_HZ apart
    comb = _comb_share(call, df)
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


def calls(x: np.ndarray, fs: int) -> list[Call]:
    """The strongest call at each time scale (``SHORT``, ``LONG``) in the raw samples ``x``."""
    x = np.asarray(x, dtype=np.float32)
    nl = _nfft(fs, LONG[0])
    long_p = _spectra(x, nl)
    if long_p.shape[0] < 4:
        return []
    out = []
    for win_s, lags, trend_s in (SHORT, LONG):
        nfft = _nfft(fs, win_s)
        p = long_p if nfft == nl else _spectra(x, nfft)
        out.append(_call(p, fs, nfft, lags, trend_s))
    return out


def siren_inside(x: np.ndarray, fs: int) -> float:
    """The strength of the strongest call that counts (loud, moving in pitch, not an engine's orders) in the
    event's raw samples ``x``; 0 when there is none."""
    return max([c.strength for c in calls(x, fs) if c.counts()], default=0.0)
