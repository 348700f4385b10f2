"""Pass-by detector on synthetic 10 Hz level sequences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gateway.noise.detector import DetectorConfig, PassByDetector
from gateway.noise.dsp import FRAME_DTYPE
from gateway.noise.errors import ConfigError


def frames(levels: list[float], start: int = 0) -> np.ndarray:
    f = np.zeros(len(levels), dtype=FRAME_DTYPE)
    f["index"] = np.arange(start, start + len(levels))
    f["lafmax"] = levels
    return f


def run(levels, config=None, split_at=None):
    d = PassByDetector(config or DetectorConfig())
    lv = list(levels)
    if split_at is None:
        out = d.feed(frames(lv))
    else:
        out = d.feed(frames(lv[:split_at])) + d.feed(frames(lv[split_at:], split_at))
    return out + d.flush(), d


def test_event_with_hysteresis():
    lv = [70] * 10 + [86, 90, 95, 90, 84, 83, 86, 81] + [70] * 10
    ev, _ = run(lv)
    assert len(ev) == 1
    e = ev[0]
    assert (e.start, e.end, e.peak, e.lafmax) == (10, 17, 12, 95.0)  # 84 and 83 stay within 3 dB hysteresis
    assert not e.too_long and not e.cut


def test_block_boundaries_do_not_matter():
    lv = [70] * 5 + [88, 92, 96, 91, 80] + [70] * 5 + [90] * 4 + [70] * 3
    a, _ = run(lv)
    for k in range(1, len(lv)):
        b, _ = run(lv, split_at=k)
        assert b == a


def test_min_and_max_duration():
    short, d = run([70, 90, 90, 70, 70])  # 0.2 s < 0.3 s
    assert short == [] and d.counters["short"] == 1
    long_, d = run([70] + [90] * 250 + [70])  # 25 s > 20 s: reported, flagged
    assert len(long_) == 1 and long_[0].too_long and d.counters["too_long"] == 1
    cut, _ = run([70] + [90] * 500, DetectorConfig(hard_limit_s=30))
    assert [e.cut for e in cut] == [True, True] and cut[0].end - cut[0].start == 300


def test_distance_normalisation():
    cfg = DetectorConfig(distance_m=15.0)  # 6.02 dB further than 7.5 m: 80 dB here is 86 dB at 7.5 m
    assert cfg.distance_correction_db == pytest.approx(20 * math.log10(2))
    ev, _ = run([60] * 5 + [80] * 5 + [60] * 5, cfg)
    assert len(ev) == 1
    near, _ = run([60] * 5 + [80] * 5 + [60] * 5, DetectorConfig(distance_m=7.5))
    assert near == []


def test_two_overlapping_passbys_are_split_at_the_dip():
    lv = [70] + [86, 92, 100, 96, 90, 88, 89, 93, 98, 99, 94, 88] + [70]
    ev, d = run(lv)
    assert len(ev) == 2 and d.counters["splits"] == 1
    assert ev[0].end == ev[1].start == 6 and ev[0].lafmax == 100 and ev[1].lafmax == 99


@pytest.mark.parametrize("kw", [{"distance_m": 0}, {"enforcement_db": 80}, {"min_duration_s": 30},
                                {"uncertainty_db": -1}, {"candidate_db": float("nan")}])
def test_bad_config_is_refused(kw):
    with pytest.raises(ConfigError):
        DetectorConfig(**kw)
