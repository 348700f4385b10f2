"""One pass-by, one event: which pieces of a chain are a louder neighbour's approach or departure.

The detector cuts events at dips (``split_db``) and around the maximum of a long event. Both cuts also cut a
single vehicle: a revving exhaust drops 8-10 dB between throttle blips, and a long loud pass-by leaves flanks
on either side of its maximum; a gear change on the approach can take the level under the threshold for a
moment. The detector hands over the pieces of a *chain* (touching pieces: no frame under the threshold between
them, or at most ``DetectorConfig.bridge_s``) together; ``absorb`` decides which of them are a louder touching
neighbour's approach or departure (pieces ``gap`` frames apart or closer touch; where they do not touch
outright, the caller's ``across`` must allow it too: the pipeline lets no detection disappear into a
suppressed record across a gap). A piece is, when

- its maximum lies at the boundary it shares with the neighbour (within ``EDGE_PEAK_S``): it has no maximum of
  its own, the level rises into the neighbour or falls from it; or
- its maximum stays under the neighbour's pass-by envelope ``Lmax - 10 lg(1 + (v dt / r)^2)``, at the time
  ``dt`` between the two maxima, for a vehicle passing at ``v`` (``speed_mps``) at the slant distance ``r``:
  a vehicle passing that slowly would still be that loud there, so the piece's level needs no second vehicle;

and the caller's ``may`` allows it (the pipeline requires both pieces to be of the same class: a quieter
exhaust next to a louder bus keeps its own event, and so does a motorcycle whose peak follows a louder horn's
honk, even though its maximum then lies at the edge it shares with the honk). One exception, and only as an
edge skirt (``edge_only``): a piece called ``other`` whose maximum lies at the edge it shares with a louder
exhaust piece, neither suppressed, joins it (thirty-first session). It has no maximum of its own, so the class
the model gave a fragment of the exhaust's rise or fall names no second source; kept apart, it stood between
the exhaust and the rest of its pass-by, and a blip beyond it stayed a detection that missed the vehicle's
maximum. For the pairs the caller's
``free`` names (the pipeline, with ``DetectorConfig.exhaust_blips``: both pieces called exhaust, and the
quieter one no enforcement case unless the louder one is one too), touching is enough: a straight pipe revved
at a light or blipped through its gears rises 8-10 dB for each blip, seconds from its maximum and above any
pass-by envelope, and every such blip had been a detection of its own that did not cover the vehicle's maximum.
Two loud vehicles in a row touch as well as one vehicle's blips do, and one microphone cannot tell them apart
(a car revving at a light does not move, so no envelope bounds its blips). A case that touches a louder case
therefore joins it, and the record lists it among its ``absorbed_cases`` (its maximum and level): one case per
chain of touching violations, stated at the loudest maximum, with every further over-limit maximum named in
it (twenty-eighth session; from the twenty-fifth to then each stayed a case of its own, and a blip seconds
from its vehicle's maximum became a second case at a moment when another vehicle may be the one in front of
the camera). A case never joins a louder piece that is no case except as its skirt (edge or envelope): that
piece may be blocked by its own flags or score, and the case would be lost. Unless that piece is *suppressed*
(thirtieth session): a siren heard on the louder part of one loud stretch may still sound, masked, on the
quieter part that touches it, and a case there would escape the suppression only because the detector split
the stretch (a civil-defence siren 13 dB under a 100 dB car, lost by the local detector under it). The case
joins it, and with it the suppression.

Quietest pieces go first; an absorbing piece keeps its own maximum, so each absorption is tested against the
envelope of the piece that made the level.

Sans-IO: frame indices in, spans out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

from gateway.noise.dsp import FRAME_HZ


class Piece(Protocol):
    start: int  # frames
    end: int
    peak: int
    lafmax: float


EDGE_PEAK_S = 0.3  # a pass-by rises and falls over seconds: a maximum this close to an event's edge is someone else's


def peak_near_start(e: Piece) -> bool:
    return e.peak - e.start < EDGE_PEAK_S * FRAME_HZ


def peak_near_end(e: Piece) -> bool:
    return e.end - 1 - e.peak < EDGE_PEAK_S * FRAME_HZ


def edge_peak(e: Piece, span: tuple[int, int], opened: bool = False) -> bool:
    """Is ``e``'s maximum at an edge of its pass-by ``span`` (frames; the piece's own, or the pass-by it became
    after absorbing its approach or departure)? A maximum at the start of a piece that ``opened`` from under
    the threshold was made there by the source itself (a straight pipe revved from quiet), not by a neighbour."""
    start = peak_near_start(e) and span[0] == e.start and not opened
    return start or (peak_near_end(e) and span[1] == e.end)


def under_envelope(e: Piece, n: Piece, speed_mps: float, slant_m: float) -> bool:
    """Is ``e``'s maximum under the pass-by envelope of ``n`` (a vehicle at ``speed_mps``, ``slant_m`` away)?"""
    dt = abs(e.peak - n.peak) / FRAME_HZ
    return e.lafmax <= n.lafmax - 10 * math.log10(1 + (speed_mps * dt / slant_m) ** 2)


def absorb(pieces: Sequence[Piece], *, speed_mps: float, slant_m: float,
           may: Callable[[int, int], bool] = lambda k, j: True,
           free: Callable[[int, int], bool] = lambda k, j: False, gap: int = 0,
           across: Callable[[int, int], bool] = lambda k, j: True,
           edge_only: Callable[[int, int], bool] = lambda k, j: False) -> list[tuple[int, tuple[int, int], int]]:
    """The surviving pieces of one chain, in order: (index, the span it now answers for, pieces absorbed);
    ``free(k, j)``: piece ``k`` may join its louder touching neighbour ``j`` whatever the envelope; ``gap``:
    neighbours at most this many frames apart count as touching (``DetectorConfig.bridge_s``), where
    ``across(k, j)`` allows it too; ``edge_only(k, j)``: ``k`` joins ``j`` only if its maximum lies at the edge
    they share (neither ``free`` nor the envelope counts)."""
    return [(k, span, len(m)) for k, span, m in absorb_members(pieces, speed_mps=speed_mps, slant_m=slant_m,
                                                                may=may, free=free, gap=gap, across=across,
                                                                edge_only=edge_only)]


def absorb_members(pieces: Sequence[Piece], *, speed_mps: float, slant_m: float,
                   may: Callable[[int, int], bool] = lambda k, j: True,
                   free: Callable[[int, int], bool] = lambda k, j: False, gap: int = 0,
                   across: Callable[[int, int], bool] = lambda k, j: True,
                   edge_only: Callable[[int, int], bool] = lambda k, j: False,
                   ) -> list[tuple[int, tuple[int, int], list[int]]]:
    """``absorb``, each survivor with the indices of the pieces it absorbed (directly or through another)."""
    spans = [(p.start, p.end) for p in pieces]
    alive = list(range(len(pieces)))
    members: list[list[int]] = [[] for _ in pieces]
    while True:
        best: tuple[float, float, int, int] | None = None
        for pos, k in enumerate(alive):
            for q in (pos - 1, pos + 1):
                if not 0 <= q < len(alive):
                    continue
                j = alive[q]
                e, n = pieces[k], pieces[j]
                if n.lafmax > e.lafmax and may(k, j) and _skirt(e, spans[k], n, spans[j], speed_mps, slant_m,
                                                                free(k, j), gap if across(k, j) else 0,
                                                                edge_only(k, j)):
                    key = (e.lafmax, -n.lafmax, pos, j)
                    best = key if best is None or key < best else best
        if best is None:
            break
        _, _, pos, j = best
        k = alive.pop(pos)
        spans[j] = (min(spans[j][0], spans[k][0]), max(spans[j][1], spans[k][1]))
        members[j] += [k, *members[k]]
    return [(k, spans[k], sorted(members[k])) for k in alive]


def _skirt(e: Piece, es: tuple[int, int], n: Piece, ns: tuple[int, int], speed_mps: float, slant_m: float,
           free: bool = False, gap: int = 0, edge_only: bool = False) -> bool:
    """Is ``e`` (answering for ``es``) the approach or departure of its louder neighbour ``n`` (``ns``)? With
    ``free``, touching (within ``gap`` frames) is enough."""
    if 0 <= ns[0] - es[1] <= gap:
        edge = peak_near_end(e) and e.end == es[1]  # the level rises into n
    elif 0 <= es[0] - ns[1] <= gap:
        edge = peak_near_start(e) and e.start == es[0]  # ... or falls from it
    else:
        return False  # not touching (a piece too short to report lay between them)
    if edge_only:
        return edge
    return free or edge or under_envelope(e, n, speed_mps, slant_m)


VOTE_MIN = 0.2  # a louder piece called ``other`` with at least this exhaust score ...
VOTE_SURE = 0.5  # ... that touches a quieter exhaust piece this sure is that exhaust's loudest moment
VOTED = "class_from_chain"  # the flag of a piece ``exhaust_votes`` named


def exhaust_votes(pieces: Sequence[Piece], recs: Sequence, gap: int) -> list[int]:
    """Pieces of one chain (in order) called ``other`` that the chain calls exhaust: not suppressed, an exhaust
    score of at least ``VOTE_MIN``, and touching (within ``gap`` frames) a quieter piece called exhaust with at
    least ``VOTE_SURE`` that is not suppressed either. The detector cuts a loud pass-by around its maximum and at
    its dips, and the model, which sees one piece at a time, often calls the short piece holding a clipped or
    revving maximum ``other`` while the flanks it cut away sound like the exhaust they are; then the flanks
    were false detections (they miss the vehicle's maximum) and the maximum was a miss."""
    out = []
    for j, (p, r) in enumerate(zip(pieces, recs, strict=True)):
        if r.klass != "other" or r.suppressed or float(r.scores.get("exhaust", 0.0)) < VOTE_MIN:
            continue
        for k in (j - 1, j + 1):
            if not 0 <= k < len(pieces):
                continue
            q, rk = pieces[k], recs[k]
            touching = 0 <= (p.start - q.end if k < j else q.start - p.end) <= gap
            if (touching and q.lafmax < p.lafmax and rk.klass == "exhaust" and not rk.suppressed
                    and float(rk.scores.get("exhaust", 0.0)) >= VOTE_SURE):
                out.append(j)
                break
    return out


def pass_bys(pieces: Sequence[Piece], recs: Sequence, part_of: Sequence[int | None], *, speed_mps: float,
             slant_m: float, gap: int, blips: bool) -> list[tuple[int, tuple[int, int], int, list[int]]]:
    """``absorb`` with the pipeline's rules for one chain, given each piece's record (``klass``, ``enforcement``,
    ``suppressed``) and the piece it was cut from (``part_of``, None: not cut): (index, span, pieces absorbed,
    their indices). Pieces of one class join (``may``; a cut stays cut); an exhaust piece joins a louder exhaust
    piece whatever the envelope if ``blips``, unless it is a case and the louder one is neither a case nor
    suppressed (``free``; then it joins only as a skirt); across a gap, a piece that is not suppressed never
    joins a suppressed one (``across``: it would disappear from the detections). A piece called ``other`` joins
    a louder exhaust piece as its edge skirt only (``edge_only``), neither of them suppressed."""

    def skirt_of_exhaust(k: int, j: int) -> bool:
        return recs[k].klass == "other" and recs[j].klass == "exhaust" and not (recs[k].suppressed or recs[j].suppressed)
    kept = absorb_members(
        pieces, speed_mps=speed_mps, slant_m=slant_m, gap=gap,
        may=lambda k, j: ((recs[k].klass == recs[j].klass or skirt_of_exhaust(k, j))
                          and (part_of[k] is None or part_of[k] != part_of[j])
                          and not (recs[k].enforcement and VOTED in recs[j].flags)),
        edge_only=skirt_of_exhaust,
        free=lambda k, j: blips and recs[k].klass == "exhaust" and (not recs[k].enforcement or recs[j].enforcement
                                                                  or recs[j].suppressed),
        across=lambda k, j: recs[k].suppressed or not recs[j].suppressed)
    return [(k, span, len(m), m) for k, span, m in kept]
