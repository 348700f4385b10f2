"""Issue 13, sixth pass: the cheaper helpers of the per-block and per-event analysis give the same values as the
numpy calls they replace (bench.dsp_rtf's goal of >= 500x must not change a single feature)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gateway.noise.harmonics import clip_index
from gateway.noise.spectrum import median1, median_rows

finite32 = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40), elements=finite32))
def test_median_rows_is_numpys_median(a):
    assert np.array_equal(median_rows(a), np.median(a, axis=1))


@settings(max_examples=200, deadline=None)
@given(st.one_of(hnp.arrays(np.float32, st.integers(1, 60), elements=finite32),
                 hnp.arrays(np.float64, st.integers(1, 60), elements=st.floats(-1e9, 1e9, allow_nan=False))))
def test_median1_is_numpys_median(a):
    got, want = median1(a), np.median(a)
    assert got == want and np.asarray(got).dtype == np.asarray(want).dtype


def test_medians_of_nothing_are_nan():
    assert np.isnan(median1(np.zeros(0))) and median_rows(np.zeros((3, 0))).shape == (3,)


@given(hnp.arrays(np.int64, st.integers(0, 30), elements=st.integers(-100, 5000)), st.integers(0, 50),
       st.integers(50, 4000))
def test_clip_index_is_numpys_clip(a, lo, hi):
    assert np.array_equal(clip_index(a, lo, hi), np.clip(a, lo, hi))


def test_feature_values_are_dataclasses_asdict():
    """``Features.values`` (what the model reads) is ``dataclasses.asdict`` without the deep copy."""
    from dataclasses import asdict

    from gateway.noise.features import features
    from tests.noise.over_exhaust import exhaust_scene

    scene, src = exhaust_scene(7)
    tp = int(src["t_peak"] * scene.fs)
    ft = features(scene.audio[tp - 2 * scene.fs: tp + 2 * scene.fs], scene.fs, 2 * scene.fs, level_7p5=96.0)
    assert ft.values() == asdict(ft) and list(ft.values()) == list(asdict(ft))
    assert ft.as_dict() == {k: round(float(v), 4) for k, v in asdict(ft).items()}
