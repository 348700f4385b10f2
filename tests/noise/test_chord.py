"""Issue 13, thirtieth session: a 5:6 tone pair blocks a case only when it is a chord, not two orders of a comb.

``two_tone_56`` (a model input, unchanged) counts the loud frames whose dominant narrow peak has a partner at 6/5
or 5/6 of it. An exhaust whose orders 4 and 7 are coloured away leaves orders 5 and 6 standing alone as such a
pair, and ``tonal_content`` blocked 4 of its over-limit cases on the cached independent sets for it.
``chord_56`` counts only the pairs that ``harmonics.pair_in_comb`` does not place in a comb of their own spacing
(a further order below *and* above the pair), and the rule reads it. What must hold: a chord (a civil-defence
siren's minor third, a two-tone horn) is never excused, alone or over an engine's comb, and the engine pair is.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.noise.classifier import features
from gateway.noise.features import NFFT
from gateway.noise.harmonics import pair_in_comb
from gateway.noise.rules import TWO_TONE_LIMIT, feature_flags
from tests.noise.test_tones import FS, _phase, at_mic, noise

SECONDS = 6.0


def comb(f0: float, levels_db: dict[int, float], seed: int = 0) -> np.ndarray:
    """Orders of a fundamental ``f0`` wobbling by 1 % (rpm), at the given dB, random phases."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * FS)) / FS
    ph = _phase(f0 * (1 + 0.01 * np.sin(2 * np.pi * 0.3 * t)))
    return sum(10 ** (db / 20) * np.sin(h * ph + rng.uniform(0, 2 * np.pi)) for h, db in levels_db.items())


def chord(f1: float, ratio: float = 6 / 5) -> np.ndarray:
    """Two held tones sounding together, each with its 2nd and 3rd harmonics."""
    t = np.arange(int(SECONDS * FS)) / FS
    out = np.zeros(t.size)
    for f in (f1, f1 * ratio):
        ph = _phase(np.full(t.size, f))
        out += np.sin(ph) + 0.3 * np.sin(2 * ph) + 0.2 * np.sin(3 * ph)
    return out


def feats(x: np.ndarray):
    return features(x.astype(np.float32), FS)


@pytest.mark.parametrize("f0", [60.0, 75.0])
def test_two_orders_of_a_comb_are_no_chord(f0):
    """Orders 3, 5, 6 and 8 standing, 4 and 7 gone: the 5:6 pair is seen (``two_tone_56``) and is no chord."""
    x = at_mic(comb(f0, {3: -4.0, 5: 0.0, 6: -8.0, 8: -9.0}), 100.0) + at_mic(noise(SECONDS), 70.0)
    ft = feats(x)
    assert ft.two_tone_56 > 0.2
    assert ft.chord_56 == 0.0


@pytest.mark.parametrize("f1", [350.0, 450.0, 620.0, 900.0])
def test_a_chord_alone_is_a_chord_and_blocks(f1):
    x = at_mic(chord(f1), 95.0) + at_mic(noise(SECONDS), 70.0)
    ft = feats(x)
    assert ft.chord_56 == ft.two_tone_56 > 0.5
    assert "tonal_content" in feature_flags(ft)


@pytest.mark.parametrize("f1", [350.0, 450.0, 900.0])
@pytest.mark.parametrize("f0", [31.0, 37.0, 41.0, 55.0, 90.0])
def test_a_chord_over_an_engine_comb_is_never_excused(f1, f0):
    """A dense comb 10 dB under the chord puts orders near the positions the test probes: a further order is
    needed on *both* sides of the pair, so no frame of the chord is taken for the comb's."""
    eng = comb(f0, {h: -1.0 * h for h in range(1, 17)}, seed=int(f0))
    x = at_mic(chord(f1), 95.0) + at_mic(eng, 85.0) + at_mic(noise(SECONDS), 70.0)
    ft = feats(x)
    assert ft.chord_56 == ft.two_tone_56
    assert ("tonal_content" in feature_flags(ft)) == (ft.two_tone_56 >= TWO_TONE_LIMIT or ft.tonal >= 0.25)


DF = FS / NFFT  # the features' long frame


def spectrum(lines: list[tuple[float, float]], floor_db: float, n_bins: int = 2049) -> np.ndarray:
    """One frame's power spectrum: Hann-shaped lines (frequency Hz, dB) over a flat floor."""
    f = np.arange(n_bins) * DF
    p = np.full(n_bins, 10 ** (floor_db / 10))
    for fq, db in lines:
        p += 10 ** (db / 10) * np.exp(-0.5 * ((f - fq) / (0.6 * DF)) ** 2)
    return p[None, :]


@settings(max_examples=200, deadline=None)
@given(f1=st.floats(250.0, 2500.0), h2=st.floats(-30.0, 0.0), h3=st.floats(-30.0, 0.0),
       second=st.floats(-10.0, 0.0), floor=st.floats(-60.0, -25.0))
def test_a_chord_with_its_own_harmonics_is_never_in_a_comb(f1, h2, h3, second, floor):
    """Independent oracle: the spectrum is built from the chord's lines (integer multiples of each tone), so
    whatever their levels nothing sits at 0.6, 0.8, 1.4 or 1.6 times the lower tone."""
    f2 = f1 * 6 / 5
    lines = [(f1, 0.0), (f2, second), (2 * f1, h2), (2 * f2, h2 + second), (3 * f1, h3), (3 * f2, h3 + second)]
    p = spectrum([ln for ln in lines if ln[0] < 20_000], floor)
    assert not pair_in_comb(p, np.array([f1]), np.array([f2]), DF)[0]


@settings(max_examples=200, deadline=None)
@given(g=st.floats(40.0, 300.0), below=st.sampled_from([1, 2]), above=st.sampled_from([1, 2]),
       lvl=st.floats(-12.0, 0.0))
def test_a_pair_with_an_order_below_and_above_is_in_a_comb(g, below, above, lvl):
    """Orders within 12 dB of the pair (the test allows 15: a line between two bins reads up to 1.5 dB low in
    each of the two bins compared) on both sides: a comb. On one side only: not."""
    lo, hi = 5 * g, 6 * g
    p = spectrum([(lo, 0.0), (hi, -3.0), (lo - below * g, lvl), (hi + above * g, lvl)], -50.0)
    assert pair_in_comb(p, np.array([lo]), np.array([hi]), DF)[0]
    one_side = spectrum([(lo, 0.0), (hi, -3.0), (hi + above * g, lvl)], -50.0)
    assert not pair_in_comb(one_side, np.array([lo]), np.array([hi]), DF)[0]
