"""A gear change on the approach is no second vehicle (``DetectorConfig.bridge_s``, ``gateway.noise.chains``):
pieces with at most ``bridge_s`` under the threshold between them are one chain, and the pipeline absorbs an
approach piece into its pass-by across such a gap as if they touched, except that a piece that is not
suppressed never disappears into a suppressed record (issue 13, twenty-third session: 30 of the 47 false exhaust
detections within a labelled exhaust's span on the 576 cached independent scenes lay 0.1-4 s from their
vehicle's main event)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gateway.noise.chains import absorb, under_envelope
from gateway.noise.detector import DetectorConfig, PassByDetector
from gateway.noise.errors import ConfigError
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from tests.noise.over_exhaust import exhaust_scene
from tests.noise.test_detector import _passby, frames, run

FS = 48_000


def _gear_change(gap_frames: int) -> list[float]:
    """A 95 dB approach, ``gap_frames`` under the threshold (the clutch in), then the 104 dB pass-by."""
    return [70.0] * 5 + _passby(95.0, 14)[:8] + [70.0] * gap_frames + _passby(104.0, 30) + [70.0] * 20


@pytest.mark.parametrize(("gap", "bridge", "one_chain"), [(5, 1.0, True), (10, 1.0, False), (5, 0.0, False),
                                                          (15, 2.0, True)])
def test_pieces_within_the_bridge_are_one_chain(gap, bridge, one_chain):
    ev, _ = run(_gear_change(gap), DetectorConfig(bridge_s=bridge))
    assert len(ev) == 2 and ev[1].start - ev[0].end == gap
    assert (ev[0].chain == ev[1].chain) is one_chain


def test_a_held_chain_is_handed_over_once_the_bridge_has_passed_and_at_the_end_of_the_stream():
    lv = [70.0] * 5 + _passby(100.0, 30) + [70.0] * 30
    (ev,), _ = run(lv, DetectorConfig(bridge_s=0.0))
    close = ev.end  # the first frame under the threshold
    d = PassByDetector(DetectorConfig(bridge_s=1.0))
    assert d.feed(frames(lv[: close + 9])) == []  # closed, held: a piece may still open
    out = d.feed(frames(lv[close + 9: close + 10], close + 9))
    assert len(out) == 1 and out[0].end == close  # the 10th frame under the threshold ends it
    d = PassByDetector(DetectorConfig(bridge_s=1.0))
    assert d.feed(frames(lv[: close + 3])) == [] and len(d.flush()) == 1


def test_absorb_treats_pieces_within_the_gap_as_touching_where_across_allows():
    ev, d = run(_gear_change(5), DetectorConfig(bridge_s=1.0))
    cfg = d.config
    assert under_envelope(ev[0], ev[1], cfg.skirt_speed_mps, cfg.slant_m)
    kw = {"speed_mps": cfg.skirt_speed_mps, "slant_m": cfg.slant_m}
    assert [n for _, _, n in absorb(ev, **kw)] == [0, 0]  # 5 frames apart: no touching without a gap
    assert [(k, span, n) for k, span, n in absorb(ev, gap=10, **kw)] == [(1, (ev[0].start, ev[1].end), 1)]
    assert len(absorb(ev, gap=4, **kw)) == 2
    assert len(absorb(ev, gap=10, across=lambda k, j: False, **kw)) == 2


def test_the_bridge_is_checked():
    with pytest.raises(ConfigError, match="bridge_s"):
        DetectorConfig(bridge_s=-1.0)
    with pytest.raises(ConfigError, match="bridge_s"):
        DetectorConfig(bridge_s=6.0)


def _clutch(seed: int) -> tuple[np.ndarray, float, float]:
    """A lone exhaust pass-by of the training family whose sound drops 30 dB for 0.5 s, 1.8 s before its maximum
    (the clutch in for a gear change)."""
    scene, src = exhaust_scene(seed)
    x = scene.audio.astype(np.float64)
    i, n, r = int((src["t_peak"] - 1.8) * FS), int(0.5 * FS), int(0.02 * FS)
    g = np.full(n, 10 ** (-30 / 20))
    g[:r], g[-r:] = np.linspace(1, g[0], r), np.linspace(g[0], 1, r)
    x[i: i + n] *= g
    return x.astype(np.float32), scene.labels["distance_m"], src["t_peak"]


@pytest.mark.parametrize("seed", [2, 5])
def test_an_exhaust_with_a_gear_change_on_its_approach_is_one_record(seed):
    audio, dist, t_peak = _clutch(seed)
    on = AnalyzerConfig(detector=DetectorConfig(distance_m=dist))
    off = dataclasses.replace(on, detector=dataclasses.replace(on.detector, bridge_s=0.0))
    _, apart = analyze_array(audio, off)
    loud = [e for e in apart if e.levels.lafmax_7p5 >= 85.0]
    assert [e.klass for e in loud] == ["exhaust", "exhaust"], [(e.klass, e.start, e.end) for e in apart]
    assert 0 < loud[1].start - loud[0].end <= 1.0 and loud[0].end < t_peak - 1.0  # the approach, apart
    _, one = analyze_array(audio, on)
    (rec,) = [e for e in one if e.levels.lafmax_7p5 >= 85.0]
    assert rec.klass == "exhaust" and rec.pass_by is not None and rec.pass_by.absorbed == 1
    assert (rec.start, rec.end) == pytest.approx((loud[0].start, loud[1].end), abs=0.01)
    assert rec.levels.lafmax == pytest.approx(loud[1].levels.lafmax, abs=0.01)  # the pass-by's own maximum
