"""A piece the model calls ``other`` whose maximum lies at the edge it shares with a louder exhaust piece is that
exhaust's skirt (``chains.pass_bys``, thirty-first session): it has no maximum of its own, so the class the model
gave a fragment of the exhaust's rise or fall says nothing about a second source. Before, pieces joined only
within one class, so such a fragment stayed a record of its own and stood between the exhaust and the rest of
its pass-by (a blip after a short ``other`` fragment stayed a false detection that missed the vehicle's maximum).

Only as a skirt: an ``other`` piece with a maximum of its own (a bus after the exhaust, under its envelope or
not) keeps its record, and nothing joins a suppressed piece this way (a detection must not vanish into it)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.noise.chains import pass_bys, under_envelope
from gateway.noise.detector import DetectorConfig
from tests.noise.test_edge_peak import piece

CFG = DetectorConfig()
KW = dict(speed_mps=CFG.skirt_speed_mps, slant_m=CFG.slant_m, gap=CFG.bridge_frames, blips=True)


def _rec(klass: str, suppressed: bool = False, case: bool = False) -> SimpleNamespace:
    return SimpleNamespace(klass=klass, enforcement=case, suppressed=suppressed, flags=())


def test_an_other_fragment_at_the_edge_joins_the_louder_exhaust():
    """A 108 dB exhaust (frames 0-60), a 95 dB ``other`` fragment falling from it (maximum at its first frame)."""
    pieces = [piece(0, 30, 60, 108.0), piece(60, 60, 75, 95.0)]
    assert pass_bys(pieces, [_rec("exhaust"), _rec("other")], [None, None], **KW) == [(0, (0, 75), 1, [1])]
    # ... and one rising into it (maximum at its last frame)
    rising = [piece(0, 14, 15, 95.0), piece(15, 45, 75, 108.0)]
    assert pass_bys(rising, [_rec("other"), _rec("exhaust")], [None, None], **KW) == [(1, (0, 75), 1, [0])]


def test_the_fragment_no_longer_keeps_the_exhausts_blip_apart():
    """exhaust, a short ``other`` fragment falling from it, then a blip of the same exhaust: one record."""
    pieces = [piece(0, 30, 60, 108.0), piece(60, 60, 64, 96.0), piece(70, 80, 90, 99.0)]
    recs = [_rec("exhaust"), _rec("other"), _rec("exhaust")]
    assert pass_bys(pieces, recs, [None] * 3, **KW) == [(0, (0, 90), 2, [1, 2])]
    # with the fragment called exhaust too this was already so; called horn it still stands between them
    recs_horn = [_rec("exhaust"), _rec("horn"), _rec("exhaust")]
    assert len(pass_bys(pieces, recs_horn, [None] * 3, **KW)) == 3


def test_an_other_piece_with_a_maximum_of_its_own_keeps_its_record():
    """A bus after the exhaust: its maximum is inside its piece, under the exhaust's envelope or not."""
    for lafmax in (90.0, 104.0):
        pieces = [piece(0, 30, 60, 108.0), piece(60, 80, 100, lafmax)]
        if lafmax == 90.0:
            assert under_envelope(pieces[1], pieces[0], CFG.skirt_speed_mps, CFG.slant_m)  # same class would join
        kept = pass_bys(pieces, [_rec("exhaust"), _rec("other")], [None, None], **KW)
        assert [k for k, *_ in kept] == [0, 1]


@pytest.mark.parametrize(("sup_exhaust", "sup_other"), [(True, False), (False, True), (True, True)])
def test_no_skirt_join_with_a_suppressed_piece(sup_exhaust, sup_other):
    pieces = [piece(0, 30, 60, 108.0), piece(60, 60, 75, 95.0)]
    recs = [_rec("exhaust", suppressed=sup_exhaust), _rec("other", suppressed=sup_other)]
    assert len(pass_bys(pieces, recs, [None, None], **KW)) == 2


def test_an_exhaust_never_becomes_the_skirt_of_a_louder_other_piece():
    """The rule is one-way: an exhaust fragment at the edge of a louder ``other`` piece keeps its record
    (``chains.exhaust_votes`` is what may call that louder piece exhaust)."""
    pieces = [piece(0, 30, 60, 108.0), piece(60, 60, 75, 95.0)]
    assert len(pass_bys(pieces, [_rec("other"), _rec("exhaust")], [None, None], **KW)) == 2


@given(st.lists(st.tuples(st.integers(2, 40), st.floats(80.0, 115.0), st.sampled_from(["exhaust", "other", "horn"]),
                          st.booleans(), st.floats(0.0, 1.0)), min_size=1, max_size=6))
def test_every_detection_and_the_loudest_maximum_survive(spec):
    """Touching pieces of any classes: every frame is still answered for by exactly one survivor, no exhaust
    record disappears into a piece of another class, and the chain's loudest piece survives."""
    pieces, recs, t = [], [], 0
    for n, lafmax, klass, sup, where in spec:
        pieces.append(piece(t, t + round(where * (n - 1)), t + n, lafmax))
        recs.append(_rec(klass, suppressed=sup))
        t += n
    kept = pass_bys(pieces, recs, [None] * len(pieces), **KW)
    spans = sorted(span for _, span, _, _ in kept)
    assert spans[0][0] == 0 and spans[-1][1] == t
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    loudest = max(range(len(pieces)), key=lambda i: (pieces[i].lafmax, -i))
    survivors = {k for k, *_ in kept}
    assert any(pieces[k].lafmax == pieces[loudest].lafmax for k in survivors)
    for k, _, _, members in kept:
        for m in members:
            assert recs[m].klass == recs[k].klass or (recs[m].klass == "other" and recs[k].klass == "exhaust")
