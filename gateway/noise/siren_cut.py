"""A pass-by cut away from a siren heard elsewhere in its event (sans-IO: times in, times out).

An event is one stretch of level above the threshold. In a busy street it can hold an over-limit pass-by
*and*, seconds before or after the pass-by's maximum, a siren that starts, stops or passes. A siren heard
anywhere inside an event keeps it from becoming a case (``siren_nearby``: docs/noise-suppression.md), because
the record answers for its whole span. Where every siren heard in the event lies outside the pass-by's core
(its maximum +- ``CORE_S``), the event is cut at the edges of the siren's intervals nearest the core: the part
holding the maximum is a record of its own (the same LAFmax, a span with no siren heard in it), and the parts
with the siren are records of their own, which the siren keeps from being cases. Nothing is dropped. Only an
event that ``siren_nearby`` alone kept from being a case is cut (``only_siren_blocks``): a cut part is checked
again on less sound, and must not shed another rule's flag that way (a horn's onset before the cut).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from gateway.noise.detector import RawEvent
from gateway.noise.dsp import FRAME_HZ
from gateway.noise.rules import is_case


def only_siren_blocks(rec, margin_db: float, enforcement_db: float) -> bool:
    """Would the record ``rec`` (``contract.evidence.NoiseEvidence``) be a case but for ``siren_nearby``?"""
    rest = [f for f in rec.flags if f != "siren_nearby"]
    return "siren_nearby" in rec.flags and is_case(rec.klass, case_score(rec),
                                                   rec.thresholds["min_exhaust_score"], rec.suppressed, rest,
                                                   rec.levels.lafmax_7p5, margin_db, enforcement_db)


def case_score(rec) -> float:
    """The score the record's case gate was applied to (``enforcement_score``; older records: the exhaust score)."""
    v = getattr(rec, "enforcement_score", None)
    return float(rec.scores.get("exhaust", 0.0)) if v is None else float(v)


def cut_points(spans: Sequence[tuple[float, float]], start: float, end: float, peak: float, core_s: float,
               min_s: float) -> tuple[float | None, float | None]:
    """(left, right): where to cut [start, end] so that the part holding ``peak`` +- ``core_s`` overlaps none of
    ``spans`` (the siren intervals heard in the event, clipped to it); None on a side that needs no cut, or
    where the part cut off would be shorter than ``min_s`` (then it stays, and so does the siren). (None, None)
    if a span reaches into the core: the siren sounds at the maximum, which no cut can change."""
    lo, hi = peak - core_s, peak + core_s
    if any(a < hi and lo < b for a, b in spans):
        return None, None
    left = max((b for a, b in spans if b <= lo), default=None)
    right = min((a for a, b in spans if a >= hi), default=None)
    if left is not None and not (left - start >= min_s and peak - left > 0):
        left = None
    if right is not None and not (end - right >= min_s and right - peak > 0):
        right = None
    return left, right


def cut_piece(ev: RawEvent, spans: Sequence[tuple[float, float]], frames: Callable[[int, int], np.ndarray], *,
              core_s: float, min_s: float, max_duration_s: float) -> list[RawEvent] | None:
    """``ev`` cut (``cut_points``) into parts, or None. ``frames(a, b)``: the stored 10 Hz frames [a, b); a
    part's maximum is its own frames' (the part holding ``ev``'s maximum keeps it); only the last part of an
    event closed at the hard limit stays ``cut``."""
    start, end, peak = ev.start / FRAME_HZ, ev.end / FRAME_HZ, (ev.peak + 0.5) / FRAME_HZ
    left, right = cut_points(spans, start, end, peak, core_s, min_s)
    if left is None and right is None:
        return None
    bounds = [ev.start, *(round(t * FRAME_HZ) for t in (left, right) if t is not None), ev.end]
    parts = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        fr = frames(a, b)
        if fr.size == 0:
            return None
        k = int(np.argmax(fr["lafmax"]))
        pk, lmax = (ev.peak, ev.lafmax) if a <= ev.peak < b else (int(fr["index"][k]), float(fr["lafmax"][k]))
        parts.append(replace(ev, start=a, end=b, peak=pk, lafmax=lmax, cut=ev.cut and b == ev.end,
                             ended=ev.ended and b == ev.end,
                             too_long=(b - a) / FRAME_HZ > max_duration_s))
    return parts
