"""Is a spectral peak one order of a low harmonic series (an engine, a voice) rather than a siren's tone?

An engine's exhaust is a harmonic series of a low fundamental (the firing or cycle frequency: 20-550 Hz from
a motorcycle single's cycle to a V12's firing at high rpm; a bus idles at 20-50 Hz), and so is a voice (85-280
Hz). Any one of its orders is a narrow, persistent peak, so a tonal detector that only checks narrowness takes
it for a siren. A siren's or a horn's dominant tone is different: its fundamental has no partials at +- a
lower spacing next to it (its own harmonics lie at integer multiples above it; a two-tone pair has at most one
neighbour).

``series_member(p, k, df)``: for each row of power spectra ``p`` (frames x bins, bin width ``df`` Hz) and its
peak bin ``k``, True when for some order h >= 2 the fundamental ``f0 = f_peak / h`` lies in
[``f0_min``, ``f0_max``] Hz (30-500 Hz; and at least 3 bins, so neighbours are resolved) and *both* neighbouring orders
``f_peak - f0`` and ``f_peak + f0`` carry a local maximum within 20 dB of the peak that stands ``drop_db``
above the valleys half-way between the orders. A two-tone horn (ratio 1.1-1.4) or siren has one neighbour
at most; odd-harmonic waveforms have none at +- f0.

``comb_root(p, k, df)``: True when the peak is itself the *fundamental* of such a comb (a fast engine whose
firing frequency is above 250 Hz), told from a siren's or a horn's tone by its even orders (below).

``pair_in_comb(p, lo, hi, df)``: True when a 5:6 tone pair is two orders of a comb of its own spacing (a
further order below and one above the pair), not a chord (``features``' ``chord_56``, ``rules.tonal_content``).
"""

from __future__ import annotations

import numpy as np

F0_MIN = 30.0
F0_MAX = 500.0


def series_member(p: np.ndarray, k: np.ndarray, df: float, *, f0_min: float = F0_MIN, f0_max: float = F0_MAX,
                  drop_db: float = 6.0, within_db: float = 20.0, h_max: int = 16,
                  resolved: bool | np.ndarray = False) -> np.ndarray:
    """See the module docstring. ``resolved`` (for all rows, or a mask of rows): each neighbour must also stand
    ``drop_db`` above the lower of the two bins around the half-way point between it and the peak (a dip
    *between* them). Without it, the far valley (1.5 orders out) alone may satisfy the test, so a peak smeared
    over a few bins (a fast sweep within one frame: a yelp's harmonic moves ~150 Hz in 21 ms) passes as its
    own neighbours at +- 3 bins."""
    n_rows, n_bins = p.shape
    if n_rows == 0:
        return np.zeros(0, dtype=bool)
    # all orders at once (rows x orders): one gather per probe instead of a Python loop over the orders
    k = np.asarray(k, dtype=np.int64)
    fp = (k * df)[:, None]
    rows = np.arange(n_rows)[:, None]
    peak = p[rows[:, 0], np.minimum(np.maximum(k, 0), n_bins - 1)][:, None]
    g = 10 ** (drop_db / 10)
    floor = peak * 10 ** (-within_db / 10)
    f0 = fp / np.arange(2, h_max + 1, dtype=np.float64)[None, :]
    ok = (f0 >= max(f0_min, 3 * df)) & (f0 <= f0_max)
    if not ok.any():
        return np.zeros(n_rows, dtype=bool)
    inv = 1.0 / df

    def local(f: np.ndarray) -> np.ndarray:
        kk = np.minimum(np.maximum(np.rint(f * inv).astype(np.int64), 1), n_bins - 2)
        return np.maximum(np.maximum(p[rows, kk - 1], p[rows, kk]), p[rows, kk + 1])

    def at(f: np.ndarray) -> np.ndarray:
        return p[rows, np.minimum(np.maximum(np.rint(f * inv).astype(np.int64), 0), n_bins - 1)]

    both = ok
    for s in (-1.0, 1.0):
        v = local(fp + s * f0)
        valley = np.minimum(at(fp + s * 0.5 * f0), at(fp + s * 1.5 * f0))
        both = both & (v >= floor) & (v >= g * valley)
        if np.any(resolved):
            mid = (fp + s * 0.5 * f0) * inv
            lo_ = np.minimum(np.maximum(np.floor(mid).astype(np.int64), 0), n_bins - 1)
            hi_ = np.minimum(lo_ + 1, n_bins - 1)
            dip = v >= g * np.minimum(p[rows, lo_], p[rows, hi_])
            both = both & (dip | ~np.asarray(resolved, dtype=bool).reshape(-1, 1))
    return both.any(axis=1)


COMB_F_MIN = 150.0
COMB_F_MAX = 1500.0


class _OrderProbe:
    """What ``comb_root`` and ``firing_line`` read around each row's peak (bin ``k``): which rows can hold
    orders 2-5 inside the spectrum with the peak in [f_min, f_max] (``ok``), the peak's power and frequency,
    the power at a frequency (``at``) and the largest power within +-(1 + h // 2) bins of order h (``local``:
    the peak bin is +-0.5 bin off, so order h is +-h/2 bins off)."""

    __slots__ = ("p", "rows", "n_bins", "inv", "ok", "fp", "peak")

    @classmethod
    def of(cls, p: np.ndarray, k: np.ndarray, df: float, f_min: float, f_max: float) -> _OrderProbe | None:
        n_rows, n_bins = p.shape
        if n_rows == 0:
            return None
        k = np.asarray(k, dtype=np.int64)
        fp = k * df
        ok = (fp >= max(f_min, 4 * df)) & (fp <= f_max) & (5.5 * fp < (n_bins - 2) * df)
        if not ok.any():
            return None
        pr = cls.bare(p, df)
        pr.ok, pr.fp = ok, fp
        pr.peak = p[pr.rows, clip_index(k, 0, n_bins - 1)]
        return pr

    @classmethod
    def bare(cls, p: np.ndarray, df: float) -> _OrderProbe:
        """Only ``at`` and ``local`` (no peak: ``pair_in_comb`` probes around a pair, not one peak)."""
        pr = cls()
        pr.p, pr.rows, pr.n_bins, pr.inv = p, np.arange(p.shape[0]), p.shape[1], 1.0 / df
        return pr

    def at(self, f: np.ndarray) -> np.ndarray:
        return self.p[self.rows, clip_index(np.rint(f * self.inv).astype(np.int64), 0, self.n_bins - 1)]

    def local(self, f: np.ndarray, h: int) -> np.ndarray:
        kk = np.rint(f * self.inv).astype(np.int64)
        w = 1 + h // 2
        cols = clip_index(kk[:, None] + np.arange(-w, w + 1)[None, :], 0, self.n_bins - 1)
        return self.p[self.rows[:, None], cols].max(axis=1)


def comb_root(p: np.ndarray, k: np.ndarray, df: float, *, f_min: float = COMB_F_MIN, f_max: float = COMB_F_MAX,
              drop_db: float = 6.0, within_db: float = 25.0, even_tol_db: float = 3.0) -> np.ndarray:
    """Is each row's peak (bin ``k``) the *fundamental* of an engine-like comb of integer multiples?

    ``series_member`` finds an engine order by its neighbours on both sides, so it cannot see the case where
    the dominant peak is the engine's own firing frequency (a four-cylinder at 9,000 rpm fires at 300 Hz, a
    V12 at 6,000 rpm at 600 Hz: the firing frequency is then the loudest narrow line above 250 Hz and has
    nothing below it). Such a peak is a comb root when orders 2, 3 and 4 (``f_peak`` times 2, 3, 4) all
    carry a local maximum within ``within_db`` of the peak that stands ``drop_db`` above the valleys half an
    order either side, *and* the even orders are not weaker than the odd ones (mean dB of orders 2 and 4 at
    least the mean of 3 and 5 minus ``even_tol_db``). A train of firing pulses has a smooth harmonic envelope
    (even and odd alike); a siren's or a horn's square-ish, soft-clipped or triangular tone is dominated by
    its odd harmonics, so it stays a tone. The fundamental must lie in [``f_min``, ``f_max``] Hz and be at
    least 4 bins wide so the orders are resolved."""
    pr = _OrderProbe.of(p, k, df, f_min, f_max)
    if pr is None:
        return np.zeros(p.shape[0], dtype=bool)
    ok, fp, at, local = pr.ok, pr.fp, pr.at, pr.local
    g = 10 ** (drop_db / 10)
    floor = pr.peak * 10 ** (-within_db / 10)

    level = {}
    both = ok.copy()
    for h in (2, 3, 4, 5):
        v = local(h * fp, h)
        level[h] = 10 * np.log10(v + 1e-30)
        if h <= 4:
            valley = np.minimum(at((h - 0.5) * fp), at((h + 0.5) * fp))
            both &= (v >= floor) & (v >= g * valley)
    even = 0.5 * (level[2] + level[4])
    odd = 0.5 * (level[3] + level[5])
    return both & (even >= odd - even_tol_db)


def clip_index(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``np.clip`` for integer index arrays (the same values; np.clip's wrapper costs more than the work here)."""
    return np.minimum(np.maximum(a, lo), hi)


def firing_line(p: np.ndarray, k: np.ndarray, df: float, *, f_min: float = COMB_F_MIN, f_max: float = COMB_F_MAX,
                drop_db: float = 6.0, within_db: float = 20.0, over_db: float = 3.0) -> np.ndarray:
    """Is each row's peak (bin ``k``) the firing line of a fast engine whose higher orders are coloured away?

    ``comb_root`` needs orders 2-4 within 25 dB of the line. A vehicle's body and exhaust colouring can push
    orders 3 and 4 further down (order 2 at -14 dB, 3 at -27, 4 at -35: a five-cylinder firing at 260 Hz), and
    the line is then a lone narrow peak that a siren detector takes for a tone. What such a line keeps is the
    *decay* of a pulse train's harmonics: order 2 stands ``drop_db`` out of the valleys half an order either
    side, within ``within_db`` of the line, at least ``over_db`` stronger than order 3, and orders 4 and 5 are
    no stronger than order 3. A siren's or a horn's square-ish tone is the other way round (order 3 at -9.5 dB,
    an even order at most -14 dB: order 2 is >= 4.4 dB *weaker* than order 3); a tone through a resonance
    (strong orders 4-5 over a weak order 3) or a soft-clipped one (odd orders) fails the decay. A full comb
    (``k^-a``) can pass, as it does ``comb_root``. Not a feature of the classifier: ``features.py`` does not
    call it, so the committed model's inputs do not depend on it."""
    pr = _OrderProbe.of(p, k, df, f_min, f_max)
    if pr is None:
        return np.zeros(p.shape[0], dtype=bool)
    fp = pr.fp
    v2, v3 = pr.local(2 * fp, 2), pr.local(3 * fp, 3)
    valley = np.minimum(pr.at(1.5 * fp), pr.at(2.5 * fp))
    return (pr.ok & (v2 >= pr.peak * 10 ** (-within_db / 10)) & (v2 >= 10 ** (drop_db / 10) * valley)
            & (v2 >= 10 ** (over_db / 10) * v3) & (np.maximum(pr.local(4 * fp, 4), pr.local(5 * fp, 5)) <= v3))


def pair_in_comb(p: np.ndarray, lo: np.ndarray, hi: np.ndarray, df: float, *, drop_db: float = 6.0,
                 within_db: float = 15.0) -> np.ndarray:
    """Is each row's tone pair (``lo`` < ``hi`` Hz, the two peaks of a 5:6 pair) two orders of one harmonic
    comb, spacing ``g = hi - lo``, rather than a chord?

    True when further orders of that spacing stand on both sides of the pair: one below (``lo - g`` or
    ``lo - 2g``) and one above (``hi + g`` or ``hi + 2g``), each a local maximum (within a bin of where it should
    be) within ``within_db`` of the pair's louder peak that stands ``drop_db`` above the valleys half a spacing
    either side. ``series_member`` asks the dominant peak for both neighbours; an exhaust whose orders 4 and 7
    are coloured away (orders 3, 5, 6 and 8 standing) leaves its orders 5 and 6 as a lone 5:6 pair, and this asks
    the pair for one order on each side, skipping one. A chord's two tones (a civil-defence siren's minor third,
    a two-tone horn) have nothing there: their own harmonics lie at integer multiples, 2 lo at the earliest,
    and 0.6, 0.8, 1.4 and 1.6 lo are none of those. One side would not do: a dense engine comb under a chord
    puts an order near one of those places often enough to excuse a real chord (``tests/noise/test_chord.py``).
    The spacing must be at least 3 bins so the orders are resolved."""
    if p.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    pr = _OrderProbe.bare(p, df)
    g = hi - lo
    floor = np.maximum(pr.at(lo), pr.at(hi)) * 10 ** (-within_db / 10)
    gain = 10 ** (drop_db / 10)

    def order(f: np.ndarray) -> np.ndarray:
        v = pr.local(f, 0)  # +-1 bin
        return (f >= df) & (v >= floor) & (v >= gain * np.minimum(pr.at(f - 0.5 * g), pr.at(f + 0.5 * g)))

    below = order(lo - g) | order(lo - 2 * g)
    above = order(hi + g) | order(hi + 2 * g)
    return below & above & (g >= 3 * df)
