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


def _passby(peak_db: float, n: int = 60) -> list[float]:
    """A pass-by's 10 Hz level: 1/r envelope of a vehicle at 50 km/h, 7.5 m from the microphone."""
    t = (np.arange(n) - n // 2) / 10
    return list(peak_db - 10 * np.log10(1 + (13.9 * t / 7.5) ** 2))


def test_a_loud_vehicle_in_a_long_queue_gets_its_own_event():
    """A queue keeps the level above the threshold for 30 s; each vehicle dips ~6 dB (< split_db) between
    neighbours. The loud one (104 dB) is cut out with its own LAFmax; the pieces are not too_long."""
    queue = []
    for k in range(10):
        queue += _passby(104.0 if k == 5 else 92.0, 30)
    lv = [70] * 5 + [max(v, 86.0) for v in queue] + [70] * 5
    ev, d = run(lv)
    assert len(ev) >= 8 and d.counters["long_pieces"] == len(ev) - 1
    assert not any(e.too_long or e.cut for e in ev)
    loud = max(ev, key=lambda e: e.lafmax)
    assert loud.lafmax == pytest.approx(104.0, abs=0.05) and loud.duration_s <= 4.0  # one vehicle: 3 s apart
    assert loud.start < loud.peak < loud.end - 1  # an interior maximum
    assert [e.start for e in ev[1:]] == [e.end for e in ev[:-1]]  # nothing lost between pieces
    for k in range(1, len(lv), 37):  # streaming: block boundaries still do not matter
        assert run(lv, split_at=k)[0] == ev


def test_a_steady_long_event_stays_one_too_long_event():
    ev, d = run([70] + [90 + 0.5 * math.sin(k / 3) for k in range(250)] + [70])  # ripple < long_split_db
    assert len(ev) == 1 and ev[0].too_long and d.counters["long_pieces"] == 0


def test_an_event_cut_after_its_maximum_is_complete():
    """The input ends (or the hard limit comes) while the level is still above the threshold: ``cut`` only if
    the level there is within down_db of the maximum (the maximum may still be ahead)."""
    falling = [70] + _passby(104.0, 60)[:45] + [90.0] * 5  # ends 14 dB under its maximum
    ev, d = run(falling)
    assert len(ev) == 1 and not ev[0].cut and ev[0].lafmax == pytest.approx(104.0, abs=0.05)
    assert d.counters["cut_after_max"] == 1
    rising = [70] + _passby(104.0, 60)[:28]  # ends 2 frames before its maximum would come
    ev, d = run(rising)
    assert len(ev) == 1 and ev[0].cut and d.counters["cut_after_max"] == 0


def test_a_loud_vehicle_over_a_queue_without_dips_gets_its_own_event():
    """Issue 13, sixth pass: a queue whose level never dips 4 dB between vehicles (no second maximum of 4 dB
    prominence) keeps one 30 s piece; the loud vehicle standing out of it is cut out around its maximum (within
    down_db, or half its rise over the queue), so it is not ``too_long``; the flanks keep it."""
    for queue_db, loud_db in ((88.0, 104.0), (96.0, 104.0)):
        lv = [70] * 5 + [queue_db + 0.5 * math.sin(k / 3) for k in range(300)] + [70] * 5
        for k, v in enumerate(_passby(loud_db, 60)):
            lv[150 + k] = max(lv[150 + k], v)
        ev, d = run(lv)
        loud = max(ev, key=lambda e: e.lafmax)
        assert loud.lafmax == pytest.approx(loud_db, abs=0.05) and not loud.too_long and not loud.cut
        assert loud.duration_s <= 6.0 and loud.start < loud.peak < loud.end - 1
        assert d.counters["peak_pieces"] == 1
        assert [e.start for e in ev[1:]] == [e.end for e in ev[:-1]]  # nothing lost between pieces
        assert all(e.too_long for e in ev if e is not loud and e.duration_s > 20)


def test_a_maximum_that_could_never_be_a_case_leaves_the_queue_one_event():
    """Cutting costs an event's analysis: a maximum under enforcement_db + uncertainty_db (97 dB at 7.5 m) could
    never make a case, so the queue stays one too_long event."""
    lv = [70] * 5 + [88.0 + 0.5 * math.sin(k / 3) for k in range(300)] + [70] * 5
    for k, v in enumerate(_passby(96.0, 60)):
        lv[150 + k] = max(lv[150 + k], v)
    ev, d = run(lv)
    assert len(ev) == 1 and ev[0].too_long and d.counters["peak_pieces"] == 0


def test_a_long_steady_sound_is_not_cut_around_its_maximum():
    """A siren-like steady level over 30 s with a 3 dB swell: no pass-by stands out, it stays too_long."""
    lv = [70] + [92 + 3 * math.exp(-((k - 150) / 40) ** 2) for k in range(300)] + [70]
    ev, d = run(lv)
    assert len(ev) == 1 and ev[0].too_long and d.counters["peak_pieces"] == 0
