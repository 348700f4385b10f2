"""Is a horn sounding at the maximum of an event, on top of a loud pass-by? (``Features.horn_inside``)

``rules.horn_tones`` finds a horn by the jump of the *broadband* level when it switches on (>= 12 dB); a horn
blown while a 104 dB exhaust passes cannot make such a jump, and its tones may be excused as engine lines (a
horn's harmonics are a comb of integer multiples, ``harmonics.comb_root``; a bus or a second engine supplies
neighbours for ``harmonics.series_member``), so ``tonal`` and ``tonal_at_max`` do not see it either. What such a
horn still has is an onset *in its own narrow band*: its tone is absent in the frames before, then present at a
held pitch, and it stays on through the loud part. An engine order never does that: it swells with the
pass-by, and when it moves into a band (rpm, a gear change) it comes from a neighbouring frequency, so the band
a few bins either side already held it.

``switched_on_tone`` takes the narrow peaks at 250-3000 Hz sounding in the frame of the event's maximum
(within ``CAND_DB`` of the strongest, at most ``MAX_CAND``: the horn's tones or partials and the engine's
orders) and follows each one (+-1 bin) back and forward from the maximum while it stays within ``CAND_DB`` of
its frame's strongest peak and narrow: its *run*. A run counts when

- it lasts at least ``MIN_RUN`` frames;
- its tone is a real share of the sound: the median of its +-1 bin holds at least ``SHARE_DB`` of the power at
  250-3000 Hz of the maximum's frame;
- it switched on: the power in the +-``BEFORE_BINS`` bins around its pitch in the quieter of the (up to) two
  frames just before the run is the returned onset below the median of the run's first ``STEP_AFTER`` frames
  (frames before that were not transformed, ``features`` only transforms frames within 15 dB of the loudest,
  say nothing); a run within ``LEAD_FRAMES`` of the start of the audio has no onset (its onset opened the
  event), and an onset where another line that was sounding breaks off is a gear change (``_line_broke``).

It returns the largest such onset (dB; 0 when no run counts). Not a model input: the committed model and its
scores do not change; ``rules.horn_inside`` blocks enforcement at ``rules.HORN_INSIDE_DB``. Cost: a pass over
the event's frames, per event.

``opening_tone`` covers the run that opened the event (twenty-eighth session). The pipeline gives it the audio
from ``OPEN_PRE_S`` before an event called exhaust and over the limit (one that could be a case) whose maximum
lies within ``OPEN_MAX_S`` of its start, every frame transformed. Only a run starting within ``LEAD_FRAMES`` of
the opening counts, and its onset is taken over the rise of the broadband floor (the median bin at 250-3000 Hz)
since its quietest frame before the run: a horn adds its tones to what was sounding, while a throttle blip from
idle or an approaching pass-by lifts the engine's orders and its roar together. Cost: one float32 STFT of at
most ``OPEN_PRE_S + OPEN_MAX_S + OPEN_POST_S`` seconds for such events (``features.opening_horn``).
"""

from __future__ import annotations

import numpy as np

OPEN_PRE_S = 1.0  # ``opening_tone``: audio before the event's start it is given (the frames before the onset)
OPEN_MAX_S = 3.0  # ... asked of events whose maximum lies this soon after their start (a honk opened them)
OPEN_POST_S = 1.0  # ... and this much after the maximum
MIN_RUN = 12  # frames (12 x 42.7 ms: a horn held for 0.5 s; an rpm plateau held an order 10 frames on the holdout family)
SHARE_DB = -12.0  # the tone's +-1 bin holds at least 6 % of the power at 250-3000 Hz at the maximum
BEFORE_BINS = 1  # the band around the pitch compared before the run and in it (+-1 bin: a neighbouring order stays out)
F_LO, F_HI = 250.0, 3000.0  # where horn tones are searched (the band of ``features``' tonal peak)
CAND_DB = 10.0  # a tone counts while within 10 dB of the strongest peak of its frame in that band
STEP_AFTER = 4  # frames after a step whose median tone level counts (170 ms: a horn stays on)
LINE_BEFORE = 4  # frames a line must sound before an onset for ``_line_broke`` to watch it
LINE_DROP_DB = 10.0  # a line dropping this much at another tone's onset: the engine changed gear
LEAD_FRAMES = 6  # a tone must switch on at least 0.26 s into the event's audio (inside it, not opening it)
MAX_CAND = 6  # tones examined per event (the strongest narrow peaks at the maximum)
NARROW_G = 4.0  # a tone stands 6 dB over the spectrum 3-6 bins either side (narrow; an order 2 bins away allowed)


def _candidates(row: np.ndarray, lo: int, hi: int) -> list[int]:
    """Narrow local maxima of one power spectrum in bins [lo, hi) within ``CAND_DB`` of the strongest there (at
    most ``MAX_CAND``, strongest first): the tones sounding at the event's maximum."""
    seg = row[lo:hi]
    if seg.size < 16:
        return []
    top = float(seg.max())
    inner = seg[1:-1]
    loc = np.flatnonzero((inner >= seg[:-2]) & (inner >= seg[2:]) & (inner >= top * 10 ** (-CAND_DB / 10))) + 1
    out = []
    for j in loc[np.argsort(seg[loc])[::-1]]:
        k = lo + int(j)
        if k - 7 < 0 or k + 7 >= row.size:
            continue
        v = row[k]
        if v >= NARROW_G * row[k - 6: k - 2].min() and v >= NARROW_G * row[k + 3: k + 7].min():
            out.append(k)
        if len(out) == MAX_CAND:
            break
    return out


def switched_on_tone(p: np.ndarray, frame_no: np.ndarray, df: float, hop: int, nfft: int,
                     peak: int | None, opened_at: int | None = None) -> float:
    """The largest onset (dB) of a held tone sounding at the maximum ``peak`` (sample index); ``p``: the
    event's power spectra (frames x bins) at frame numbers ``frame_no`` (hop ``hop``, window ``nfft``). With
    ``opened_at`` (the frame number where the event opened, in audio that starts before it) only a tone that
    switched on within ``LEAD_FRAMES`` of it counts: the one the event's own frames cannot show. Its onset is
    then taken over the rise of the broadband floor (the median bin at 250-3000 Hz) from its quietest frame
    before the run: a horn adds its tones to what was sounding, while a throttle blip from idle lifts the
    engine's orders and its roar together, and an approaching pass-by swells its roar before an order drifts
    into its own band."""
    if peak is None or p.shape[0] < MIN_RUN:
        return 0.0
    centres = frame_no * hop + nfft // 2
    m0 = int(np.argmin(np.abs(centres - peak)))
    if abs(int(centres[m0]) - peak) > hop:
        return 0.0  # the maximum's frame was not transformed
    lo, hi = int(np.ceil(F_LO / df)), int(F_HI / df) + 1
    dom = p[:, lo:hi].max(axis=1)
    best = 0.0
    tones = []
    for kc in _candidates(p[m0], lo, hi):
        win = p[:, kc - 1: kc + 2].max(axis=1)
        near = np.minimum(p[:, kc - 6: kc - 2].min(axis=1), p[:, kc + 3: kc + 7].min(axis=1))
        present = (win >= dom * 10 ** (-CAND_DB / 10)) & (win >= NARROW_G * near)
        band = p[:, kc - BEFORE_BINS: kc + BEFORE_BINS + 1].sum(axis=1)  # the tone's power, every frame
        tones.append((present, band))
    for present, band in tones:
        if not present[m0]:
            continue
        a = b = m0  # the run of frames around the maximum where the tone sounds (held within +-1 bin)
        while a > 0 and frame_no[a - 1] == frame_no[a] - 1 and present[a - 1]:
            a -= 1
        while b < p.shape[0] - 1 and frame_no[b + 1] == frame_no[b] + 1 and present[b + 1]:
            b += 1
        opening = frame_no[a] < LEAD_FRAMES if opened_at is None else abs(int(frame_no[a]) - opened_at) > LEAD_FRAMES
        if b - a + 1 < MIN_RUN or opening:
            continue  # too short, or sounding from the event's start (its onset is what started the event)
        tone = band[a: b + 1]
        if float(np.median(tone)) < 10 ** (SHARE_DB / 10) * float(p[m0, lo:hi].sum()):
            continue
        # its onset: the median of its first STEP_AFTER frames against the quieter of the two frames before the
        # run (adjacent ones only)
        after = float(np.median(tone[:STEP_AFTER]))
        before = [q for q in (a - 1, a - 2) if q >= 0 and frame_no[q] == frame_no[a] - (a - q)]
        if not before:
            continue  # the frames just before the run are not known (too quiet to be transformed, or none)
        q = before[int(np.argmin(band[before]))]
        on = 10 * np.log10(after / max(float(band[q]), 1e-30))
        if opened_at is not None:  # over the broadband floor's rise since its quietest frame before the run (a
            floor = np.median(p[: min(a + STEP_AFTER, b + 1), lo:hi], axis=1)  # blip or a pass-by lifts both)
            rise = float(np.median(floor[a:])) / max(float(floor[:a].min()), 1e-30)
            on -= max(0.0, 10 * np.log10(max(rise, 1e-30)))
        if on > best and not _line_broke(tones, frame_no, a):
            best = float(on)
    return best


def _line_broke(tones: list, frame_no: np.ndarray, a: int) -> bool:
    """Did another tone that was sounding before frame ``a`` break off around it (a gear change: the engine's
    orders drop and come back at new pitches, and a new order appears at once)? A horn adds its tones and leaves
    the engine's lines as they were. True when a tone present in the ``LINE_BEFORE`` frames before ``a - 2``
    drops ``LINE_DROP_DB`` under their median in one of the frames ``a - 2`` .. ``a``."""
    lo = a - 2 - LINE_BEFORE
    if lo < 0 or frame_no[a] - frame_no[lo] != a - lo:
        return False
    for present, band in tones:
        if present[lo: a - 2].all():
            ref = float(np.median(band[lo: a - 2]))
            if float(band[a - 2: a + 1].min()) < ref * 10 ** (-LINE_DROP_DB / 10):
                return True
    return False


def opening_tone(p: np.ndarray, fs: int, peak: int, opened: int, nfft: int, hop: int) -> float:
    """``switched_on_tone`` for a tone whose onset opened its event (a horn blown as a quieter pass-by
    approaches: its own onset is what crossed the detector's threshold, so inside the event there is no frame
    before it). ``p``: the power spectra of *every* frame (window ``nfft``, hop ``hop``) of the event's audio
    from ``OPEN_PRE_S`` before its start to at most ``OPEN_POST_S`` after its maximum, the quiet frames before
    the onset too (``features`` transforms only frames within 15 dB of the loudest; ``features.opening_horn``
    gives these); ``peak`` and ``opened``: the samples of the maximum and of the opening in that audio. Only a
    tone switched on within ``LEAD_FRAMES`` of the opening counts (``switched_on_tone`` hears the later ones in
    the event's own frames)."""
    return switched_on_tone(p, np.arange(p.shape[0]), fs / nfft, hop, nfft, peak,
                            opened_at=int(round((opened - nfft // 2) / hop)))
