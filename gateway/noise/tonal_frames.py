"""Which frames of the 8 Hz spectrogram have a siren-like tone: the per-frame test of the local tonal detector
(``gateway.noise.suppression.SirenSuppressor`` turns tonal frames into runs and intervals).

A frame is tonal only when its dominant peak in 250-3000 Hz is *narrow*: a local maximum standing >=
``min_drop_db`` above the bins ``narrow_bins`` away on both sides (11.7 Hz bins; or, for a fast sweep, in the
47 Hz bins of the short spectrum), and >= ``min_prominence_db`` above the median of 150-5000 Hz
(``SuppressionConfig``), holding >= ``min_concentration`` of that band's energy within +-2 bins. Broadband road
noise, a spectrum tilted towards the low frequencies, or a broad resonance never qualify however loud they are.
Nor does a peak that is one order of a low harmonic series (``gateway.noise.harmonics.series_member``: narrow
peaks at +- a 30-500 Hz spacing on both sides): engine orders, which follow the rpm, and voices are such series;
a siren's or a horn's tone has no such neighbours. On the short spectrum, in frames where the long spectrum
has no narrow prominent peak at all (a tone moving too fast to be narrow in 85 ms), the neighbours must be
*resolved* (a dip between each of them and the peak, ``series_member(resolved=...)``): a yelp's harmonic
sweeps ~150 Hz within one 21 ms frame, and the skirt of that smeared peak 3 bins out is no neighbouring order
(issue 13: a yelp inside a long exhaust event was excused in one frame of two, so its run never counted). An
engine's line, steady enough to be narrow in the long spectrum, keeps the plain test there and in the short
spectrum (a V8 firing at 446-894 Hz, whose cycle orders are 2-5 short bins apart, would otherwise run). Nor is the root of such a
comb (``comb_root``: orders 2-4 present, even orders as strong as odd ones: an engine firing above 250 Hz; a
siren's tone is odd-harmonic), nor a firing line whose higher orders the vehicle coloured away
(``firing_line``: order 2 >= 3 dB over order 3, orders 4-5 no stronger than 3; a square-ish tone's order 3 is
the stronger). Those two excuse a line only up to ``engine_max_hz`` (``SuppressionConfig``, 700 Hz): a road
engine's firing frequency (cylinders x rpm / 120) stays under it but for a V10 or V12 near its redline, while a
rotor (mechanical) siren's tone is a full comb, even orders as strong as odd, held at 500-1,500 Hz at the top of
its wail (thirty-second session, docs/benchmarks.md: without the bound the detector excused it as an engine's).
"""

from __future__ import annotations

import numpy as np

from gateway.noise.harmonics import comb_root, firing_line, series_member
from gateway.noise.spectrum import median_rows


def edges(band: np.ndarray, ref: np.ndarray) -> tuple[int, int, int, int]:
    """(first, last + 1) bin of ``band`` and (first, last) bin of ``ref``."""
    idx = np.flatnonzero(band)
    r = np.flatnonzero(ref)
    return int(idx[0]), int(idx[-1]) + 1, int(r[0]), int(r[-1])


def tonal_frames(power: np.ndarray, bins: tuple[int, int, int, int], df: float, *, w: int, prom_db: float,
                 drop_db: float, min_concentration: float, engine_max_hz: float,
                 resolved: bool | np.ndarray = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tonal mask, peak bin, excused mask) of the frames (rows) of ``power`` (bin width ``df``): a narrow,
    prominent dominant peak in the band; ``excused``: such a peak that is an engine order, an engine's comb
    root or a firing line (not tonal). ``bins``: ``edges`` of the band and the reference range (the band lies
    >= ``w`` bins inside the spectrum); ``resolved`` (all frames, or a mask of frames): the series test's
    neighbours must be resolved peaks."""
    b0, b1, r0, r1 = bins
    pk = b0 + np.argmax(power[:, b0:b1], axis=1)
    flat = power.ravel()
    base = np.arange(power.shape[0]) * power.shape[1] + pk
    at = lambda d: flat[base + d]  # noqa: E731  (the bin d away from each frame's peak)
    v = at(0)
    ref_band = power[:, r0: r1 + 1]
    med = median_rows(ref_band) + 1e-30
    conc = (at(-2) + at(-1) + v + at(1) + at(2)) / (ref_band.sum(axis=1) + 1e-30)
    g = 10 ** (drop_db / 10)
    narrow = ((v >= at(-1)) & (v >= at(1)) & (v >= g * np.maximum(at(-w), at(w)))
              & (pk > b0) & (pk < b1 - 1))
    tonal = (v >= med * 10 ** (prom_db / 10)) & (conc >= min_concentration) & narrow
    cand = tonal.copy()
    if tonal.any():
        res = resolved[tonal] if isinstance(resolved, np.ndarray) else resolved
        tonal[tonal] &= ~engine_line(power[tonal], pk[tonal], df, resolved=res, engine_max_hz=engine_max_hz)
    return tonal, pk, cand & ~tonal


def engine_line(power: np.ndarray, pk: np.ndarray, df: float, *, engine_max_hz: float,
                resolved: bool | np.ndarray = False) -> np.ndarray:
    """Which rows' peak (bin ``pk``) is an engine's line, not a siren's tone: one order of a low harmonic series
    (engine orders and voices), the firing frequency of a fast engine (a comb root with even orders), or a fast
    engine's firing line whose orders 3-5 are coloured away; the last two only up to ``engine_max_hz``."""
    out = series_member(power, pk, df, resolved=resolved)
    rest = ~out
    if rest.any():
        out[rest] = comb_root(power[rest], pk[rest], df, f_max=engine_max_hz)
        rest = ~out
    if rest.any():
        out[rest] = firing_line(power[rest], pk[rest], df, f_max=engine_max_hz)
    return out
