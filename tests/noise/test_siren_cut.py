"""A pass-by cut away from a siren heard elsewhere in its event (``gateway.noise.siren_cut``).

Until the nineteenth session a siren heard anywhere inside an event kept it from becoming a case
(``siren_nearby``), even when it started seconds after the pass-by's maximum. On 192 independent dev scenes 8 of
11 over-limit exhausts blocked that way had no siren within 4 s of their maximum (labels). Now such an event is
cut at the edge of the siren's interval nearest the core: the pass-by keeps its maximum and its case, and the
siren's part is a record of its own that can be none. At the pipeline's level:
``tests/noise/test_zone_edge.py::test_a_zone_siren_heard_at_the_events_edge_is_cut_away_from_the_pass_by``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.noise.pipeline import CORE_S
from gateway.noise.siren_cut import cut_points, only_siren_blocks
from tests.noise.test_siren_tail import FS, _fed, _wail


def test_cut_points():
    # a siren from 20 s on, the pass-by's maximum at 14 s: cut at 20 s on the right only
    assert cut_points([(20.0, 30.0)], 5.0, 30.0, 14.0, 2.0, 1.0) == (None, 20.0)
    assert cut_points([(5.0, 9.0)], 5.0, 30.0, 14.0, 2.0, 1.0) == (9.0, None)  # one that stopped before
    assert cut_points([(5.0, 9.0), (20.0, 30.0), (25.0, 30.0)], 5.0, 30.0, 14.0, 2.0, 1.0) == (9.0, 20.0)
    assert cut_points([(13.0, 30.0)], 5.0, 30.0, 14.0, 2.0, 1.0) == (None, None)  # the siren reaches the core
    assert cut_points([(29.5, 30.0)], 5.0, 30.0, 14.0, 2.0, 1.0) == (None, None)  # the part cut off: too short
    assert cut_points([], 5.0, 30.0, 14.0, 2.0, 1.0) == (None, None)


@given(st.lists(st.tuples(st.floats(0, 60), st.floats(0, 20)), max_size=6), st.floats(0, 60), st.floats(1, 60),
       st.floats(0, 1))
def test_cut_points_free_the_core_or_leave_the_event_whole(raw, start, length, where):
    end = start + length
    peak = start + where * length
    spans = [(max(start, a), min(end, a + d)) for a, d in raw if a < end and a + d > start]
    left, right = cut_points(spans, start, end, peak, CORE_S, 1.0)
    if left is None and right is None:
        return
    lo, hi = left if left is not None else start, right if right is not None else end
    assert (left is None or start < left < peak) and (right is None or peak < right < end)
    assert (left is None or left - start >= 1.0) and (right is None or end - right >= 1.0)  # no sliver cut off
    assert not any(a < min(hi, peak + CORE_S) and max(lo, peak - CORE_S) < b for a, b in spans)  # the core is free


def test_the_spans_a_siren_is_heard_in():
    """``heard_spans``: the intervals that would flag an event ``siren_nearby``, clipped to it (where to cut)."""
    s = _fed(_wail(30 * FS, 12.0, 22.0))
    spans = s.heard_spans(0.0, 30.0, None, 1e-12)
    assert spans and min(a for a, _ in spans) == pytest.approx(12.0 - s.config.lead_s, abs=0.5)
    assert max(b for _, b in spans) <= 30.0  # clipped to the event
    assert max(b for _, b in spans) >= 22.0  # held after the wail
    assert s.heard_spans(0.0, 30.0, None, 1e3) == []  # no tone that loud: nothing to cut
    assert s.heard_spans(0.0, 8.0, None, 1e-12) == []  # an event before the siren: nothing in it


def test_only_an_event_that_siren_nearby_alone_kept_from_a_case_is_cut():
    from types import SimpleNamespace as NS

    def rec(flags=("siren_nearby",), klass="exhaust", score=0.9, l7=101.0, suppressed=False, siren=0.0, gate=None):
        scores = {"exhaust": score, "siren": siren, "horn": 0.0, "other": round(1.0 - score - siren, 6)}
        return NS(flags=flags, klass=klass, suppressed=suppressed, scores=scores, enforcement_score=gate,
                  thresholds={"min_exhaust_score": 0.8}, levels=NS(lafmax_7p5=l7))

    assert only_siren_blocks(rec(), 2.0, 95.0)
    assert only_siren_blocks(rec(flags=("siren_nearby", "clipped", "exceedance_proven_unclipped")), 2.0, 95.0)
    assert not only_siren_blocks(rec(flags=()), 2.0, 95.0)  # nothing to cut away from
    assert not only_siren_blocks(rec(flags=("siren_nearby", "horn_inside")), 2.0, 95.0)  # a horn blocks it too
    assert not only_siren_blocks(rec(flags=("siren_nearby", "clipped")), 2.0, 95.0)  # not proven over the limit
    assert not only_siren_blocks(rec(score=0.7), 2.0, 95.0)
    assert only_siren_blocks(rec(score=0.7, siren=0.25, gate=0.93), 2.0, 95.0)  # the score the gate was applied to
    assert not only_siren_blocks(rec(score=0.9, gate=0.7), 2.0, 95.0)
    assert not only_siren_blocks(rec(l7=96.0), 2.0, 95.0)  # under limit + margin
    assert not only_siren_blocks(rec(klass="horn"), 2.0, 95.0)
    assert not only_siren_blocks(rec(suppressed=True), 2.0, 95.0)
