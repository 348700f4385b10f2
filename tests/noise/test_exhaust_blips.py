"""A straight pipe's blips are its own pass-by (``DetectorConfig.exhaust_blips``, ``gateway.noise.chains``):
a quieter exhaust piece touching a louder exhaust piece is absorbed into it whatever the pass-by envelope, so a
revving exhaust makes one record, not one per blip -- unless the blip is an enforcement case of its own: a case
joins a louder piece only as its skirt (edge or envelope), so a second violator touching a louder one keeps its
case (twenty-fifth session)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from gateway.noise.chains import absorb, pass_bys, under_envelope
from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from tests.noise.over_exhaust import exhaust_scene
from tests.noise.test_detector import _passby, run
from tests.noise.test_edge_peak import piece

FS = 48_000


def _loud_blip() -> list[float]:
    """A 106 dB pass-by and, seconds after its maximum, a 104 dB blip with a deep dip between: the blip stands
    over the pass-by's crawling-pace (3 m/s) envelope there (the test asserts it)."""
    return [70.0] * 5 + _passby(106.0, 30)[:31] + [92.0, 90.0] + _passby(104.0, 14) + [70.0] * 5


def test_touching_is_enough_for_the_pairs_the_caller_frees():
    lv = _loud_blip()
    cfg = DetectorConfig()
    ev, d = run(lv, cfg)
    assert len(ev) == 2 and ev[0].chain == ev[1].chain and d.counters["splits"] == 1
    assert not under_envelope(ev[1], ev[0], cfg.skirt_speed_mps, cfg.slant_m)  # the envelope alone keeps it apart
    kept = absorb(ev, speed_mps=cfg.skirt_speed_mps, slant_m=cfg.slant_m)
    assert [n for _, _, n in kept] == [0, 0]
    freed = absorb(ev, speed_mps=cfg.skirt_speed_mps, slant_m=cfg.slant_m, free=lambda k, j: True)
    assert [(k, span, n) for k, span, n in freed] == [(0, (ev[0].start, ev[1].end), 1)]
    # ``may`` still decides first (the pipeline: both pieces of one class), and nothing joins a quieter piece
    assert len(absorb(ev, speed_mps=cfg.skirt_speed_mps, slant_m=cfg.slant_m, free=lambda k, j: True,
                      may=lambda k, j: False)) == 2


def _blipped(seed: int) -> tuple[np.ndarray, float]:
    """A lone exhaust pass-by of the training family with a copy of its loudest 1.2 s, 2 dB down, played again
    2.5 s after its maximum (a blip of the throttle, above the crawling-pace envelope there)."""
    scene, src = exhaust_scene(seed)
    x = scene.audio.astype(np.float64)
    i = int(src["t_peak"] * FS)
    burst = x[i - int(0.6 * FS): i + int(0.6 * FS)] * np.hanning(int(1.2 * FS)) * 10 ** (-2 / 20)
    j = i + int(2.5 * FS)
    x[j - burst.size // 2: j - burst.size // 2 + burst.size] += burst
    return x.astype(np.float32), scene.labels["distance_m"]


@pytest.mark.parametrize("seed", [3])
def test_a_blipping_exhaust_is_one_record_and_the_switch_brings_the_blip_back(seed):
    audio, dist = _blipped(seed)
    on = AnalyzerConfig(detector=DetectorConfig(distance_m=dist))
    off = dataclasses.replace(on, detector=dataclasses.replace(on.detector, exhaust_blips=False))
    _, apart = analyze_array(audio, off)
    loud = [e for e in apart if e.levels.lafmax >= 85.0]
    assert [e.klass for e in loud] == ["exhaust", "exhaust"], [(e.klass, e.start, e.end) for e in apart]
    assert loud[0].end == pytest.approx(loud[1].start, abs=0.01)  # one chain, split at the dip
    assert all(e.pass_by is None for e in apart)  # same class, but the blip stands over the pass-by's envelope
    _, one = analyze_array(audio, on)
    (rec,) = [e for e in one if e.levels.lafmax >= 85.0]
    assert rec.klass == "exhaust" and rec.pass_by is not None and rec.pass_by.absorbed == 1
    assert (rec.start, rec.end) == pytest.approx((loud[0].start, loud[1].end), abs=0.01)
    assert rec.levels.lafmax == pytest.approx(max(e.levels.lafmax for e in loud), abs=0.01)


def _rec(case: bool) -> SimpleNamespace:
    return SimpleNamespace(klass="exhaust", enforcement=case, suppressed=False)


@pytest.mark.parametrize(("quieter_case", "survivors"), [(True, 2), (False, 1)])
def test_a_case_touching_a_louder_case_keeps_its_own_record(quieter_case, survivors):
    """Two over-limit exhausts 6 s apart, the level never under the threshold between them: the second (104 dB,
    above the first's crawling-pace envelope there) is a case of its own and stays one; were it no case, it
    would be the first's blip and join it (``free``)."""
    cfg = DetectorConfig()
    pieces = [piece(0, 30, 60, 108.0), piece(60, 90, 120, 104.0)]
    assert not under_envelope(pieces[1], pieces[0], cfg.skirt_speed_mps, cfg.slant_m)
    kept = pass_bys(pieces, [_rec(True), _rec(quieter_case)], [None, None], speed_mps=cfg.skirt_speed_mps,
                    slant_m=cfg.slant_m, gap=cfg.bridge_frames, blips=True)
    assert len(kept) == survivors
    assert kept[0][0] == 0 and kept[0][1] == ((0, 60) if survivors == 2 else (0, 120))
