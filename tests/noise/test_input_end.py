"""Issue 13, thirtieth session: a pass-by still loud when the input ends can be a case (``input_end``).

Until then the detector marked the last event of a recording ``cut`` when its level there was within 10 dB of
its maximum, as it does at the 40 s hard limit, and ``cut`` blocks a case. At the hard limit that is right: the
rest of the sound opens the next event, which holds the pass-by's maximum if it is still to come. At the end of
the input nothing follows: the maximum heard is the most the vehicle was heard to make, a lower bound of its
LAFmax, so a case on it never over-states the level. Such a record is flagged ``input_end``, which does not block.
"""

from __future__ import annotations

import pytest

from bench import noise_scoring
from gateway.noise import rules
from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from simulators.noise_scene import generate

NONE = {"exhaust": 0, "legal": 0, "horn": 0.0, "cd_siren": 0.0, "ev_siren": 0.0, "wind": 0.0, "rain": 0.0}


@pytest.mark.parametrize("seed", [17, 18, 19])
def test_a_recording_that_ends_after_the_maximum_still_makes_the_case(seed):
    """One loud exhaust pass-by (training family); the recording stops 1 s after its maximum, while it is still
    loud: the same case at the same level as on the whole recording, flagged ``input_end``, never ``cut``."""
    scene = generate(seed, duration_s=24.0, mix={**NONE, "exhaust": 1})
    src = next(s for s in scene.labels["sources"] if s.get("class") == "exhaust")
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]))
    _, whole = analyze_array(scene.audio, cfg)
    _, short = analyze_array(scene.audio[: int((src["t_peak"] + 1.0) * scene.fs)], cfg)
    (case,) = [e for e in whole if e.enforcement]
    (last,) = [e for e in short if e.start <= src["t_peak"] <= e.end]
    assert "input_end" in last.flags and "cut" not in last.flags and "input_end" not in case.flags
    assert last.enforcement
    assert last.levels.lafmax == case.levels.lafmax and last.peak == case.peak


def test_the_hard_limit_still_cuts():
    """A sound that stays loud past the hard limit: the piece closed there is ``cut`` (its rest is the next
    event) and blocks; only the last one, open when the input ends, is ``input_end``."""
    scene = generate(19, duration_s=24.0, mix={**NONE, "exhaust": 1})
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"], max_duration_s=2.0,
                                                 hard_limit_s=2.0))
    _, ev = analyze_array(scene.audio, cfg)
    assert any("cut" in e.flags for e in ev)
    assert all(not e.enforcement for e in ev if "cut" in e.flags)
    assert sum("input_end" in e.flags for e in ev) <= 1


def test_input_end_does_not_block_in_the_rules_or_the_bench():
    """The bench's own copy of the non-blocking flags (it does not import the gateway: an independent scorer)
    is the rules' list."""
    assert "input_end" in rules.NOT_BLOCKING
    assert noise_scoring.NOT_BLOCKING == rules.NOT_BLOCKING
    flags = ("input_end",)
    assert rules.is_case("exhaust", 0.9, 0.8, False, flags, 100.0, 2.0, 95.0)
    assert not rules.is_case("exhaust", 0.9, 0.8, False, ("cut",), 100.0, 2.0, 95.0)
