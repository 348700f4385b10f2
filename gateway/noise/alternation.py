"""Two-tone alternations of an event's dominant narrow peak (``Features.alternation``; split out of
``gateway.noise.features``). Sans-IO, numpy only."""

from __future__ import annotations

import numpy as np

HOLD_RATIO = 1.01  # a narrow peak holds its pitch into the next frame within 1 % (a Doppler glide moves < 1 %)
ALT_STEP = (1.08, 1.6)  # a two-tone step (horn and siren pairs: 1.1-1.4; hi-lo up to 1.5), not an octave
ALT_BACK = 1.015  # the step back has the same size within 1.5 % (Doppler moves both tones alike)
ALT_ALONE_DB = 10.0  # neither tone sounds (within this) while the other holds: they alternate, not coexist


def alternations(p: np.ndarray, k: np.ndarray, fpk: np.ndarray, narrow: np.ndarray, frame_no: np.ndarray,
                 df: float) -> float:
    """Two-tone alternations: steps of the dominant narrow peak between held pitches (runs of frames holding
    their pitch within 1 %) by 1.08-1.6x and back by the same ratio (within 1.5 %), where the tone of one run
    is absent (``ALT_ALONE_DB`` under the dominant peak) in the middle frame of the other's run and vice versa
    (the frames at the step overlap both tones). A two-tone siren alternates its tones, and Doppler moves both
    alike, so the ratio holds, even when each tone is a full harmonic comb; an engine's dominant order may hop
    between orders 4 and 5 (1.25x) but both orders sound together; a gear change steps once and then sweeps.
    Counted per step-and-back (0 for a constant or sweeping pitch). Cost: a pass over the event's long frames
    (already computed), per event, never per frame of the stream."""
    if fpk.size < 3:
        return 0.0
    lf = np.log2(np.maximum(fpk, 1.0))
    held = (np.diff(frame_no) == 1) & narrow[:-1] & narrow[1:] & (np.abs(np.diff(lf)) < np.log2(HOLD_RATIO))
    runs: list[tuple[int, int]] = []  # (first, last) frame of each run of held frames
    i, n = 0, held.size
    while i < n:
        if held[i]:
            j = i
            while j < n and held[j]:
                j += 1
            runs.append((i, j))
            i = j
        else:
            i += 1
    if len(runs) < 3:
        return 0.0
    nb = p.shape[1]
    g = 10 ** (-ALT_ALONE_DB / 10)

    def alone(r: int, f: float) -> bool:  # frame r has nothing within ALT_ALONE_DB of its peak at f
        kk = int(round(f / df))
        return bool(p[r, max(kk - 1, 0): min(kk + 2, nb)].max() <= g * p[r, k[r]])

    steps = []
    for (a0, a1), (b0, b1) in zip(runs, runs[1:], strict=False):
        st = lf[b0] - lf[a1]
        ok = (frame_no[b0] - frame_no[a1] <= 3 and np.log2(ALT_STEP[0]) <= abs(st) <= np.log2(ALT_STEP[1])
              and alone((a0 + a1) // 2, fpk[b0]) and alone((b0 + b1) // 2, fpk[a1]))
        steps.append(st if ok else 0.0)
    alt = sum(1 for s1, s2 in zip(steps, steps[1:], strict=False) if s1 and s2 and abs(s1 + s2) < np.log2(ALT_BACK))
    return float(alt)
