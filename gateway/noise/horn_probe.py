"""Is a horn sounding at the maximum of an event, on top of a loud pass-by? (``Features.horn_inside``)

``rules.horn_tones`` finds a horn by the jump of the *broadband* level when it switches on (>= 12 dB); a horn
blown while a 104 dB exhaust passes cannot make such a jump, and its tones may be excused as engine lines (a
horn's harmonics are a comb of integer multiples, ``harmonics.comb_root``; a bus or a second engine supplies
neighbours for ``harmonics.series_member``), so ``tonal`` and ``tonal_at_max`` do not see it either. What such a
horn still has is an onset *in its own narrow band*: its tone is absent in the frames before, then present at a
held pitch, and it stays on through the loud part. An engine order never does that: it swells with the
pass-by, and when it moves into a band (rpm, a gear change) it comes from a neighbouring frequency, so the band
a few bins either side already held it.

``switched_on_tone`` measures, over the event's long frames (already computed by ``features``), each *held
run*: consecutive frames whose dominant narrow peak (excused or not) holds its pitch within ``HOLD_RATIO`` from
frame to frame for at least ``MIN_RUN`` frames. A run counts when

- it covers the event's maximum (the maximum lies within its span, one hop either side);
- its tone is a real share of the sound: the tone's +-2 bins hold at least ``SHARE_DB`` of the frame's power in
  the run's median frame;
- it switched on: the power in the +-``BEFORE_BINS`` bins around its pitch in the quieter of the (up to) two
  frames just before the run is the returned onset below the run's median tone power; if the frame just
  before was not transformed because it was quiet (``features`` only transforms frames within 15 dB of the
  loudest), the onset is ``QUIET_ONSET_DB``; a run that starts the event has no onset.

It returns the largest such onset (dB; 0 when no run counts). Not a model input: the committed model and its
scores do not change; ``rules.horn_inside`` blocks enforcement at ``rules.HORN_INSIDE_DB``. Cost: a pass over
the event's frames, per event.
"""

from __future__ import annotations

import numpy as np

HOLD_RATIO = 1.01  # a held pitch: within 1 % from frame to frame (a horn's Doppler glide moves < 1 % per hop)
MIN_RUN = 5  # frames (5 x 42.7 ms: a horn held for 0.2 s)
SHARE_DB = -10.0  # the tone's +-2 bins hold at least 10 % of the frame's power
BEFORE_BINS = 2  # the band around the pitch searched before the run (+-2 bins: an order drifting in is seen)
QUIET_ONSET_DB = 15.0  # the frames before were too quiet to transform: at least loud_db under the loudest


def _band(p: np.ndarray, r: int, k: int, w: int) -> float:
    n = p.shape[1]
    return float(p[r, max(k - w, 0): min(k + w + 1, n)].sum())


def switched_on_tone(p: np.ndarray, fpk: np.ndarray, narrow: np.ndarray, frame_no: np.ndarray, df: float,
                     hop: int, nfft: int, peak: int | None) -> float:
    """The onset (dB) of the loudest-switching held tone covering the maximum ``peak`` (sample index); ``p``:
    the event's power spectra (frames x bins) at frame numbers ``frame_no`` (hop ``hop``, window ``nfft``),
    ``fpk``: each frame's dominant peak (Hz), ``narrow``: whether it is a narrow peak."""
    if peak is None or fpk.size < MIN_RUN:
        return 0.0
    lf = np.log2(np.maximum(fpk, 1.0))
    held = (np.diff(frame_no) == 1) & narrow[:-1] & narrow[1:] & (np.abs(np.diff(lf)) < np.log2(HOLD_RATIO))
    best = 0.0
    i, n = 0, held.size
    while i < n:
        if not held[i]:
            i += 1
            continue
        j = i
        while j < n and held[j]:
            j += 1
        a, b = i, j  # frames a..b (inclusive) hold one pitch
        i = j
        if b - a + 1 < MIN_RUN:
            continue
        c0 = frame_no[a] * hop + nfft // 2
        c1 = frame_no[b] * hop + nfft // 2
        if not c0 - hop <= peak <= c1 + hop:
            continue
        m = (a + b) // 2
        level = float(np.median([_band(p, r, int(round(fpk[r] / df)), 2) for r in range(a, b + 1)]))
        if level < 10 ** (SHARE_DB / 10) * float(p[m].sum()):
            continue
        if frame_no[a] == 0:
            continue  # the run starts the event: nothing before it to compare with
        before = [r for r in (a - 1, a - 2) if r >= 0 and frame_no[r] == frame_no[a] - (a - r)]
        if before:
            k0 = int(round(fpk[a] / df))
            prev = min(_band(p, r, k0, BEFORE_BINS) for r in before)
            on = 10 * np.log10(level / max(prev, 1e-30))
        else:
            on = QUIET_ONSET_DB  # the frame just before it was too quiet to be transformed
        best = max(best, float(on))
    return best
