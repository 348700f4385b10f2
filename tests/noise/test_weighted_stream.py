"""Issue 13 (bench.dsp_rtf >= 500x), twenty-seventh session: an event's loud frames are chosen from the level
meter's own A-weighted stream, kept in a ring beside the raw samples, instead of A-filtering the event's samples a
second time. The meter's filter is warm at the event's start, so the energies are the better estimate; the
features may move by a frame chosen at the 15 dB edge, never by a misaligned or foreign stream.

The oracle for the meter's stream is scipy's ``sosfilt`` over the whole signal in one call (float64)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.signal import sosfilt

from gateway.noise import classifier
from gateway.noise import features as F
from gateway.noise.detector import DetectorConfig
from gateway.noise.dsp import LevelMeter, MeterConfig
from gateway.noise.pipeline import AnalyzerConfig, NoiseAnalyzer
from gateway.noise.weighting import a_weighting_sos
from simulators.noise_scene import generate
from tests.noise.over_exhaust import exhaust_scene

FS = 48_000
MIX = {"exhaust": 3, "legal": 2, "horn": 1.0, "ev_siren": 1.0}


def test_every_frame_length_and_hop_is_a_multiple_of_the_block():
    for n in (F.NFFT, F.HOP, F.NFFT_FAST, F.HOP_FAST, F.NFFT_ENGINE, F.NFFT_ENGINE // 2):
        assert n % F.E_BLOCK == 0, n


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.float32, st.integers(0, 5 * F.E_BLOCK + 17), elements=st.floats(0, 1e4, width=32)))
def test_block_energy_is_the_running_sum_at_block_edges(sq):
    c = F._block_energy(sq)
    assert c.size == sq.size // F.E_BLOCK + 1 and c[0] == 0.0
    want = np.array([np.sum(sq[: i * F.E_BLOCK], dtype=np.float64) for i in range(c.size)])
    assert np.allclose(c, want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("blocks", [[4800], [1, 4095, 333], [48_000]])
def test_the_meters_weighted_stream_is_the_a_weighted_signal(blocks):
    x = np.random.default_rng(5).normal(0, 0.05, 3 * FS).astype(np.float32)
    meter, got, i, k = LevelMeter(MeterConfig(fs=FS)), [], 0, 0
    while i < x.size:
        n = blocks[k % len(blocks)]
        meter.feed(x[i: i + n])
        got.append(meter.weighted_sq.copy())
        assert got[-1].size == min(n, x.size - i)
        i, k = i + n, k + 1
    want = sosfilt(a_weighting_sos(FS), x.astype(np.float64)) ** 2
    got = np.concatenate(got)
    assert got.size == x.size
    # the meter filters in float32: each sample within 1e-3 of the peak, the energy within 1e-4
    assert np.abs(got - want).max() <= 1e-3 * want.max()
    assert abs(got.sum(dtype=np.float64) / want.sum() - 1) < 1e-4


@pytest.mark.parametrize("seed", [3, 7, 25])
def test_features_from_the_warm_stream_match_a_cold_filter(seed):
    """A lone pass-by: the stream's weighted samples (the oracle: one sosfilt over the whole scene) choose the
    frames the event's own filter chooses, so the features agree; samples of another length are not used."""
    scene, src = exhaust_scene(seed)
    tp = int(src["t_peak"] * FS)
    a, b = tp - 4 * FS, tp + 4 * FS
    x = scene.audio.astype(np.float32)
    wsq = (sosfilt(a_weighting_sos(FS), x.astype(np.float64)) ** 2).astype(np.float32)
    cold = F.features(x[a:b], FS, 4 * FS, level_7p5=95.0).as_dict()
    warm = F.features(x[a:b], FS, 4 * FS, level_7p5=95.0, weighted_sq=wsq[a:b]).as_dict()
    for k in cold:
        assert warm[k] == pytest.approx(cold[k], rel=1e-3, abs=1e-3), k
    assert F.features(x[a:b], FS, 4 * FS, weighted_sq=wsq[a: b - 1]) == F.features(x[a:b], FS, 4 * FS)


def test_a_foreign_stream_would_choose_other_frames():
    """The check above can fail: weighted samples of another moment (a misaligned ring) change the features."""
    scene, src = exhaust_scene(7)
    tp = int(src["t_peak"] * FS)
    x = scene.audio.astype(np.float32)
    wsq = (sosfilt(a_weighting_sos(FS), x.astype(np.float64)) ** 2).astype(np.float32)
    right = F.features(x[tp - 4 * FS: tp + 4 * FS], FS, 4 * FS, weighted_sq=wsq[tp - 4 * FS: tp + 4 * FS])
    shifted = F.features(x[tp - 4 * FS: tp + 4 * FS], FS, 4 * FS, weighted_sq=wsq[tp - 7 * FS: tp + FS])
    assert right != shifted


def _records(audio: np.ndarray, distance: float, block: int, monkeypatch=None, cold: bool = False) -> list[dict]:
    if cold:
        orig = classifier.features
        monkeypatch.setattr(classifier, "features", lambda *a, weighted_sq=None, **k: orig(*a, **k))
    an = NoiseAnalyzer(AnalyzerConfig(detector=DetectorConfig(distance_m=distance)))
    out = []
    for i in range(0, audio.size, block):
        out += an.feed(audio[i: i + block]).events
    out += an.close().events
    return [e.model_dump(mode="json", by_alias=True) for e in out]


@pytest.fixture(scope="module")
def street():
    return generate(11, duration_s=40.0, mix=MIX)


def test_the_pipelines_features_do_not_depend_on_the_block_size(street):
    d = street.labels["distance_m"]
    base = _records(street.audio, d, 4800)
    assert len(base) >= 3
    for block in (4096, 7777, 48_000 * 3):
        assert _records(street.audio, d, block) == base


def test_the_pipeline_reads_the_weighted_samples_of_its_own_event(street, monkeypatch):
    """Against the cold filter over each event's own samples: the same events and classes, and features that
    differ only where a frame at the 15 dB edge changed side (the warm filter has no start-up transient)."""
    d = street.labels["distance_m"]
    warm = _records(street.audio, d, 4800)
    cold = _records(street.audio, d, 4800, monkeypatch, cold=True)
    assert [(e["start"], e["end"], e["class"]) for e in warm] == [(e["start"], e["end"], e["class"]) for e in cold]
    same = sum(w["features"] == c["features"] for w, c in zip(warm, cold, strict=True))
    assert same >= len(warm) - 1, (same, len(warm))
