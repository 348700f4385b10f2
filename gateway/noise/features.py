"""Spectral features of one event's audio, the classifier's input (``gateway.noise.classifier`` decides).

Features (computed only for events, from the raw samples of the event):

- ``tonal``: fraction of loud frames whose dominant peak (250-3000 Hz) stands >= 20 dB above the median
  spectrum, is narrow, holds most of the energy and is *not* one order of a low harmonic series (a siren or a
  horn; an engine order or a voice harmonic is such an order, ``gateway.noise.harmonics``);
- ``series``: share of those narrow-peak frames whose peak *is* an order of a low harmonic series;
- ``comb``: share of loud frames whose narrow peak is the fundamental of a comb with even orders (a fast
  engine firing above 250 Hz, ``harmonics.comb_root``); such frames are not ``tonal`` either;
- ``alternation``: two-tone steps of the dominant narrow peak (any narrow peak, excused or not) between held
  pitches 1.08-1.6x apart and back, each tone sounding alone (``alternations``): a two-tone siren even when its
  tones are full combs that the two tests above excuse (not a model input; ``rules.two_tone_steps`` uses it);
- ``tonal_at_max``: the share of the loud frames within ``AT_MAX_S`` of the event's maximum that are ``tonal``
  ones (a horn or a siren *at* the loudest moment; not a model input; ``rules.tones_at_max`` uses it);
- ``horn_inside``: the onset, in its own narrow band, of a held tone that switched on inside the event and
  covers its maximum (a horn blown during a loud pass-by, ``gateway.noise.horn_probe``; not a model input;
  ``rules.horn_inside`` uses it);
- ``siren_inside``: the strength of an emergency siren's periodic call (yelp, rumbler, hi-lo, two-tone) whose tone
  is within a few dB of the event's maximum, heard under a loud exhaust (``gateway.noise.siren_probe``; not a
  model input; ``rules.siren_inside`` uses it);
- ``onset``: the steepest sustained rise near the event's maximum, dB (the mean power of the 100 ms before a
  step against the lower of the two 80 ms windows after it: horns switch on and stay on; pops and slow firing
  pulses do not);
- ``level_7p5``: the event's LAFmax at 7.5 m (from the level meter; the model may weigh it: a legal car, bus or
  motorcycle with a silencer rarely passes 90 dB, a straight pipe often does);
- ``sweep_oct``: range of the dominant pitch over the tonal frames (wail and yelp sweeps, hi-lo);
- ``sweep_rate``: median frame-to-frame pitch change, octaves per second (yelp is fast, wail slow);
- ``two_tone_56``: fraction of tonal frames with a second peak at 6/5 or 5/6 of the dominant one (the
  minor third of civil-defence sirens; car horns sit at a major third or fourth); ``chord_56`` (not a model
  input; ``rules.feature_flags`` uses it): the same fraction counting only pairs that are not two orders of a
  comb of their own spacing (``harmonics.pair_in_comb``);
- ``engine``: harmonic salience of a low fundamental (20-320 Hz, 8 orders) in dB above the median;
- ``f0_move``: range of that fundamental over the event, octaves (engine orders follow rpm and Doppler);
- ``lf_frac``: share of the energy below 150 Hz (wind);
- ``duration_s``.

and the further descriptors in ``Features`` (short-window tonality, pitch steadiness, simultaneous tone
pairs, strongest-frame harmonic salience, spectral flatness, centroid and band shares).

Time-domain and tone-pair descriptors (``pulse``, ``crackle``, ``onset``, ``pair``) are in
``gateway.noise.event_shape``.

The *loud frames* every spectral feature is taken from are those whose **A-weighted** energy is within 15 dB of
the loudest frame's: the moments that make the level the event is measured by. (Until the eighteenth session
the frames were chosen by unweighted energy; strong wind or road rumble below 150 Hz, which the A-weighting
all but removes from the level, then chose the frames, and the features described the wind, not the vehicle
that made the level. Below ``weighting.MIN_FS`` there is no class-1 A filter and the unweighted energy
chooses.)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import scipy.fft as sfft
from scipy.signal import sosfilt

from gateway.noise.alternation import alternations
from gateway.noise.event_shape import onset, pair_share, texture
from gateway.noise.harmonics import clip_index, comb_root, pair_in_comb, series_member
from gateway.noise.horn_probe import OPEN_POST_S, OPEN_PRE_S, opening_tone, switched_on_tone
from gateway.noise.siren_probe import siren_inside
from gateway.noise.spectrum import median1, median_rows
from gateway.noise.weighting import MIN_FS, a_weighting_sos
from gateway.noise.wind import wind_share

CLASSES = ("exhaust", "siren", "horn", "other")
NFFT = 4096
HOP = 2048
MAX_SECONDS = 8.0  # long events are classified on the 8 s around their loudest part
AT_MAX_S = 0.25  # ``tonal_at_max``: frames whose centre is this close to the event's maximum
NFFT_FAST = 1024
HOP_FAST = 768
NFFT_ENGINE = 8192
E_BLOCK = 256  # frame energies from block sums: divides every NFFT and hop above


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
    tonal_fast: float = 0.0  # share of short (21 ms) frames with a narrow dominant peak
    pitch_steady: float = 0.0  # share of those whose pitch stays within 2 % of the previous one's
    pair: float = 0.0  # share of tonal frames with a simultaneous second narrow peak at 1.08-1.45x (horn)
    engine_p90: float = 0.0  # harmonic salience of the strongest frames
    f0_med: float = 0.0  # log2 of the median engine fundamental
    flatness: float = 0.0  # median spectral flatness 100-6000 Hz (broadband roar -> high)
    centroid: float = 0.0  # log2 of the median spectral centroid, 50-8000 Hz
    mid_frac: float = 0.0  # energy shares 150-500, 500-2000, 2000-8000 Hz
    low_mid_frac: float = 0.0
    high_frac: float = 0.0
    series: float = 0.0  # share of the narrow-peak frames whose peak is an order of a low harmonic series
    onset: float = 0.0  # steepest sustained rise (100 ms before vs two 80 ms windows after), dB (horns)
    level_7p5: float = 0.0  # the event's LAFmax at 7.5 m, dB (legal vehicles rarely pass 90 dB; straight pipes do)
    pulse: float = 0.0  # periodicity of the high-band envelope at 25-400 Hz (firing pulses through a pipe)
    crackle: float = 0.0  # log10 kurtosis of the differentiated signal in the loudest second (pops, crackle)
    comb: float = 0.0  # share of loud frames whose narrow peak is the fundamental of an engine-like comb
    alternation: float = 0.0  # two-tone steps: held pitch -> 1.08-1.6x -> back, each tone alone (``alternations``)
    tonal_at_max: float = 0.0  # share of the loud frames within AT_MAX_S of the maximum that are ``tonal`` ones
    horn_inside: float = 0.0  # onset (dB, own band) of a held tone switched on and covering the maximum (horn_probe)
    siren_inside: float = 0.0  # strength of a loud siren call (periodic sweep or alternation) in the event (siren_probe)
    wind_share: float = 0.0  # upper estimate of the A-weighted energy share wind could hold (wind.wind_share)
    chord_56: float = 0.0  # the two_tone_56 frames whose pair is a chord, not two orders of a comb (pair_in_comb)

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.values().items()}

    def values(self) -> dict[str, float]:
        """The fields by name, unrounded: ``dataclasses.asdict`` without its deep copy of every value (the
        fields are numbers)."""
        return {k: getattr(self, k) for k in _FIELD_NAMES}


_FIELD_NAMES = tuple(f.name for f in fields(Features))
_WINDOWS: dict[int, np.ndarray] = {}
_ASOS: dict[int, np.ndarray] = {}  # A-weighting sections per sample rate (the loud frames are chosen by A-energy)
_COLS: dict[tuple[int, float], dict] = {}


def _cols(f: np.ndarray) -> dict:
    """Column slices of the frequency axis ``f`` (sorted): each range ``features`` uses, keyed ``(lo, hi)``;
    ``hi`` ending in .1 means ``f <= hi - 0.1`` (inclusive), else ``f < hi``; the bins are the boolean masks'."""
    key = (f.size, float(f[1]))
    out = _COLS.get(key)
    if out is None:
        out = {}
        for lo, hi in ((20, 8000.1), (20, 150), (150, 500), (500, 2000), (2000, 8000), (100, 6000.1),
                       (50, 8000.1), (250, 3000.1), (150, 5000.1)):
            m = (f >= lo) & ((f <= round(hi)) if hi != round(hi) else (f < hi))
            idx = np.flatnonzero(m)
            out[lo, hi] = slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0)
        out = _COLS.setdefault(key, out)
    return out


def _stft(x: np.ndarray, nfft: int, hop: int, c: np.ndarray | None, loud_db: float = 15.0,
          where: list | None = None) -> np.ndarray:
    """Hann power spectra (float32) of the frames whose energy is within ``loud_db`` of the loudest frame's
    (only those are transformed: the cost of an event's features scales with its loud part). ``c``: the
    cumulative energy at ``E_BLOCK`` boundaries (``_block_energy``; frame energies without transforming);
    None: every frame."""
    if x.size < nfft:  # one frame, zero-padded: it is the loudest
        x = np.pad(x, (0, nfft - x.size))
        starts = np.zeros(1, dtype=np.int64)
    else:
        starts = np.arange(0, x.size - nfft + 1, hop)
        if c is not None:
            e = c[(starts + nfft) // E_BLOCK] - c[starts // E_BLOCK]
            starts = starts[e >= e.max() * 10 ** (-loud_db / 10)]
    if where is not None:
        where.append(starts // hop)
    w = _WINDOWS.get(nfft)
    if w is None:
        w = _WINDOWS.setdefault(nfft, np.hanning(nfft).astype(np.float32))
    frames = np.lib.stride_tricks.sliding_window_view(x, nfft)[starts]
    frames *= w
    spec = sfft.rfft(frames, axis=1)
    return spec.real**2 + spec.imag**2


def opening_horn(ring, start: int, end: int, peak: int, fs: int) -> float:
    """``horn_probe.opening_tone`` of the event [``start``, ``end``) (samples; its maximum at sample ``peak``) on
    the audio ``ring`` still holds (``get(a, b)``, ``end``, ``cap``: ``gateway.noise.buffers.Ring``) from
    ``OPEN_PRE_S`` before it to ``OPEN_POST_S`` after its maximum, every long frame transformed."""
    a = max(start - int(OPEN_PRE_S * fs), ring.end - ring.cap, 0)
    x = ring.get(a, min(end, peak + int(OPEN_POST_S * fs))).astype(np.float32, copy=False)
    if x.size < NFFT:
        return 0.0
    return opening_tone(_stft(x, NFFT, HOP, None), fs, peak - a, start - a, NFFT, HOP)


def _peak_freq(p: np.ndarray, k: np.ndarray, df: float) -> np.ndarray:
    """Parabolic interpolation of the peak at bins k (in log power)."""
    k = clip_index(k, 1, p.shape[1] - 2)
    rows = np.arange(p.shape[0])
    a, b, c = (np.log(p[rows, k + d] + 1e-30) for d in (-1, 0, 1))
    den = a - 2 * b + c
    off = np.where(np.abs(den) > 1e-12, 0.5 * (a - c) / np.where(den == 0, 1, den), 0.0)
    return (k + np.clip(off, -0.5, 0.5)) * df


def _narrow(p: np.ndarray, k: np.ndarray, w: int, drop_db: float = 10.0) -> np.ndarray:
    """True where bin k is a local maximum with a valley ``drop_db`` below it within ``w`` bins on both sides (a
    narrow peak; a second tone close by, as in a two-tone horn, does not make it broad)."""
    n = p.shape[1]
    r = np.arange(p.shape[0])
    v = p[r, k]
    nb = np.maximum(p[r, clip_index(k - 1, 0, n - 1)], p[r, clip_index(k + 1, 0, n - 1)])
    lo = np.min(np.stack([p[r, clip_index(k - d, 0, n - 1)] for d in range(2, w + 1)]), axis=0)
    hi = np.min(np.stack([p[r, clip_index(k + d, 0, n - 1)] for d in range(2, w + 1)]), axis=0)
    g = 10 ** (drop_db / 10)
    return (v >= nb) & (v >= g * lo) & (v >= g * hi) & (k > w) & (k < n - 1 - w)


def _cum_energy(x: np.ndarray, fs: int) -> np.ndarray:
    """Cumulative A-weighted energy of ``x`` at ``E_BLOCK`` boundaries (what chooses the loud frames; unweighted
    below ``MIN_FS``)."""
    if fs >= MIN_FS:
        sos = _ASOS.get(fs)
        if sos is None:
            sos = _ASOS.setdefault(fs, a_weighting_sos(fs))
        x = sosfilt(sos, x)
    return _block_energy(np.square(x))


def _block_energy(sq: np.ndarray) -> np.ndarray:
    """Cumulative sum of the squared samples ``sq`` over whole ``E_BLOCK``s, with a leading 0: entry i is the
    energy of sq[:i * E_BLOCK] (every frame length and hop is a multiple of the block)."""
    n = sq.size // E_BLOCK
    c = np.zeros(n + 1)
    np.cumsum(sq[: n * E_BLOCK].reshape(n, E_BLOCK).sum(axis=1, dtype=np.float64), out=c[1:])
    return c


def features(x: np.ndarray, fs: int, peak: int | None = None, *, level_7p5: float = 0.0,
             weighted_sq: np.ndarray | None = None) -> Features:
    """Features of one event's raw samples (full-scale units); ``peak``: sample index of the maximum;
    ``level_7p5``: the event's LAFmax at 7.5 m (dB), from the level meter; ``weighted_sq``: the same samples
    A-weighted and squared where the caller has them already (the level meter's stream; its filter state is warm
    at the event's start, so this is the better estimate, and it spares a second A filter over the event)."""
    x = np.asarray(x, dtype=np.float32)
    if weighted_sq is not None and (weighted_sq.size != x.size or fs < MIN_FS):
        weighted_sq = None  # not the same samples (a ring that lost some) or no class-1 A filter: filter here
    duration = x.size / fs
    cap = int(MAX_SECONDS * fs)
    if x.size > cap:
        c = x.size // 2 if peak is None else peak
        a = min(max(0, c - cap // 2), x.size - cap)
        x = x[a: a + cap]
        weighted_sq = None if weighted_sq is None else weighted_sq[a: a + cap]
        peak = None if peak is None else peak - a
    if weighted_sq is None:
        c2 = _cum_energy(x, fs)
    else:
        c2 = _block_energy(weighted_sq)
    where: list = []
    pl = _stft(x, NFFT, HOP, c2, where=where)  # frames within 15 dB of the loudest
    p = pl
    df = fs / NFFT
    f = np.arange(p.shape[1]) * df
    cols = _cols(f)  # the frequency ranges below as column slices (copied in the layout a mask's selection has,
    #                 so the sums are bit for bit the same)
    band_sum = lambda a, b: np.asfortranarray(pl[:, cols[a, b]]).sum(axis=1)  # noqa: E731
    tot = band_sum(20, 8000.1) + 1e-30
    lf_frac = float(median1(band_sum(20, 150) / tot))
    shares = [float(median1(band_sum(a, b) / tot)) for a, b in ((150, 500), (500, 2000), (2000, 8000))]
    pb = np.asfortranarray(pl[:, cols[100, 6000.1]])
    lp_ = np.log(pb + 1e-30)
    flat = float(median1(np.exp(lp_.mean(axis=1)) / (pb.mean(axis=1) + 1e-30)))
    fc = cols[50, 8000.1]
    pc = np.asfortranarray(pl[:, fc])
    cen = float(median1((pc * f[fc]).sum(axis=1) / (pc.sum(axis=1) + 1e-30)))

    # --- tonal peak 250..3000 Hz
    band = cols[250, 3000.1]
    b0 = band.start
    kpk = b0 + np.argmax(pl[:, band], axis=1)
    pref = np.asfortranarray(pl[:, cols[150, 5000.1]])
    ref = median_rows(pref) + 1e-30
    rows = np.arange(pl.shape[0])
    prom = 10 * np.log10(pl[rows, kpk] / ref)
    near = np.zeros((pl.shape[0], 5), dtype=pl.dtype)  # the peak's +-2 bins (inside the spectrum: 250-3000 Hz)
    for d in (-2, -1, 0, 1, 2):
        near[:, d + 2] = pl[rows, kpk + d]
    conc = near.sum(axis=1) / pref.sum(axis=1).clip(1e-30)
    tonal_mask = (prom >= 20) & (conc >= 0.3) & _narrow(pl, kpk, 6)
    narrow_any = tonal_mask.copy()
    n_tonal = int(tonal_mask.sum())
    comb = 0.0
    if n_tonal:  # an order of a low harmonic series (engine, voice) is not a siren's or a horn's tone
        ser = np.zeros_like(tonal_mask)
        ser[tonal_mask] = series_member(pl[tonal_mask], kpk[tonal_mask], df)
        series = float(ser.sum() / n_tonal)
        tonal_mask &= ~ser
        if tonal_mask.any():  # nor is the fundamental of a comb with even orders (a fast engine's firing)
            cmb = np.zeros_like(tonal_mask)
            cmb[tonal_mask] = comb_root(pl[tonal_mask], kpk[tonal_mask], df)
            tonal_mask &= ~cmb
            comb = float(cmb.mean())
    else:
        series = 0.0
    tonal = float(tonal_mask.mean())
    at_max = 0.0
    if peak is not None:  # is the event's maximum itself a tone (a horn or a siren on top of a pass-by)?
        near_max = np.abs(where[0] * HOP + NFFT // 2 - peak) <= AT_MAX_S * fs
        at_max = float(tonal_mask[near_max].mean()) if near_max.any() else 0.0
    fpk = _peak_freq(pl, kpk, df)
    alternation = alternations(pl, kpk, fpk, narrow_any, where[0], df)
    horn_inside = switched_on_tone(pl, where[0], df, HOP, NFFT, peak)

    two = chord = 0.0
    if tonal_mask.any():
        ft = fpk[tonal_mask]
        pt = pl[tonal_mask]
        r = np.arange(pt.shape[0])
        main = pt[r, clip_index(np.round(ft / df).astype(int), 0, p.shape[1] - 1)]
        hits = np.zeros(ft.size, dtype=bool)
        chords = np.zeros(ft.size, dtype=bool)
        for ratio in (6 / 5, 5 / 6):
            kk = clip_index(np.round(ft * ratio / df).astype(int), 2, p.shape[1] - 3)
            cand3 = np.stack([pt[r, kk + d] for d in (-1, 0, 1)])
            loc_k = kk + np.argmax(cand3, axis=0) - 1
            v = pt[r, loc_k]
            is_peak = (v > pt[r, loc_k - 1]) & (v > pt[r, loc_k + 1])
            f2 = _peak_freq(pt, loc_k, df)
            strong = v >= main * 10 ** (-1.5)
            exact = np.abs(f2 / ft / ratio - 1) < 0.02
            hit = is_peak & strong & exact & (10 * np.log10(v / ref[tonal_mask]) >= 15)
            hits |= hit
            if hit.any():  # a chord, not two orders of one comb
                lo_f, hi_f = (ft[hit], f2[hit]) if ratio > 1 else (f2[hit], ft[hit])
                chords[np.flatnonzero(hit)[~pair_in_comb(pt[hit], lo_f, hi_f, df)]] = True
        two = float(hits.sum() / max(pl.shape[0], 1))
        chord = float(chords.sum() / max(pl.shape[0], 1))

    # --- pitch track with a short window (yelp sweeps smear a long one)
    sweep_oct = sweep_rate = 0.0
    where_fast: list = []
    pfl = _stft(x, NFFT_FAST, HOP_FAST, c2, where=where_fast)
    dff = fs / NFFT_FAST
    ff = np.arange(pfl.shape[1]) * dff
    bandf = (ff >= 250) & (ff <= 3000)
    rf = np.arange(pfl.shape[0])
    kf = int(np.argmax(bandf)) + np.argmax(pfl[:, bandf], axis=1)
    reff_band = pfl[:, (ff >= 150) & (ff <= 5000)]
    promf = 10 * np.log10(pfl[rf, kf] / (median_rows(reff_band) + 1e-30))
    nearf = sum(pfl[rf, clip_index(kf + d, 0, pfl.shape[1] - 1)] for d in (-1, 0, 1))
    concf = nearf / (reff_band.sum(axis=1) + 1e-30)
    tf = (promf >= 15) & (concf >= 0.3) & _narrow(pfl, kf, 4)
    if tf.any():
        tf[tf] &= ~series_member(pfl[tf], kf[tf], dff)
    if tf.any():
        tf[tf] &= ~comb_root(pfl[tf], kf[tf], dff)
    tonal_fast = float(tf.mean())
    steady = pair = 0.0
    if tf.sum() >= 2:
        lp_all = np.log2(_peak_freq(pfl, kf, dff)[tf])
        steady = float(np.mean(np.abs(np.diff(lp_all)) < np.log2(1.02)))
        pair = pair_share(pfl[tf], kf[tf], dff, promf[tf])
    if tf.sum() >= 4 and tonal_fast >= 0.3:
        lp = np.log2(_peak_freq(pfl, kf, dff)[tf])
        sweep_oct = float(np.percentile(lp, 95) - np.percentile(lp, 5))
        sweep_rate = float(median1(np.abs(np.diff(lp)))) * fs / HOP_FAST

    # --- engine orders: comb salience of a low fundamental (harmonic peaks above the half-way valleys)
    pe = _stft(x, NFFT_ENGINE, NFFT_ENGINE // 2, c2)
    dfe = fs / NFFT_ENGINE
    cand = np.arange(25.0, 320.0, dfe / 2)
    n_h = 8
    nb = pe.shape[1]
    used = min(nb, int(np.ceil(cand[-1] * (n_h + 0.5) / dfe)) + 3)  # the bins the orders and valleys reach
    logp = np.log10(pe[:, :used] + 1e-30)
    sal = np.zeros((pe.shape[0], cand.size))
    for h in range(1, n_h + 1):
        kk = clip_index(np.round(cand * h / dfe).astype(int), 1, nb - 2)
        lo = clip_index(np.round(cand * (h - 0.5) / dfe).astype(int), 0, nb - 1)
        hi = clip_index(np.round(cand * (h + 0.5) / dfe).astype(int), 0, nb - 1)
        v = np.maximum(np.maximum(logp[:, kk], logp[:, kk - 1]), logp[:, kk + 1])
        sal += v - 0.5 * (logp[:, lo] + logp[:, hi])
    sal = 10 * sal / n_h
    best = sal.max(axis=1)
    f0 = cand[np.argmax(sal, axis=1)]
    engine = float(median1(best))
    strong = best >= np.percentile(best, 50)
    f0_move = float(np.ptp(np.log2(f0[strong]))) if strong.sum() >= 2 else 0.0
    return Features(tonal, sweep_oct, sweep_rate, two, engine, f0_move, lf_frac, duration, tonal_fast, steady, pair,
                    float(np.percentile(best, 90)), float(np.log2(median1(f0[strong]) if strong.any() else 25.0)),
                    flat, float(np.log2(max(cen, 1.0))), *shares, series, onset(x, fs), float(level_7p5),
                    *texture(x, fs), comb, alternation, at_max, horn_inside,
                    siren_inside((pfl, where_fast[0], dff, HOP_FAST / fs), (pl, where[0], df, HOP / fs)),
                    wind_share(pl, fs), chord)
