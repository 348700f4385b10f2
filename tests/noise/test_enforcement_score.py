"""The score an enforcement case needs is the classifier's exhaust against horn and other
(``gateway.noise.rules.enforcement_score``): the model's siren class does not hold a case back, the evidence built
to hear a siren's tones does (the zone state, the local detector, the feature rules)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.noise import classifier
from gateway.noise.detector import DetectorConfig
from gateway.noise.model import DEFAULT_PATH, load
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from gateway.noise.rules import enforcement_score
from simulators.noise_scene import generate

ALONE = {"exhaust": 1, "legal": 0, "horn": 0.0, "cd_siren": 0.0, "ev_siren": 0.0, "wind": 0.0, "rain": 0.0}


def constant(p: dict[str, float]):
    """The committed model's shape, answering ``p`` whatever it hears (zero weights, biases = log p)."""
    m = load(DEFAULT_PATH)
    b2 = np.array([math.log(p[k]) for k in m.classes])
    return dataclasses.replace(m, w1=np.zeros_like(m.w1), w2=np.zeros_like(m.w2), b2=b2, meta={})


def records(model, zone=None):
    scene = generate(13, duration_s=24.0, mix=ALONE)  # one loud lone exhaust pass-by
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]))
    classifier.use_model(model)
    try:
        return analyze_array(scene.audio, cfg, zone_intervals=zone)[1]
    finally:
        classifier.reset_model()


def test_siren_mass_with_no_siren_heard_does_not_hold_back_a_case():
    sure = records(constant({"exhaust": 0.7, "siren": 0.25, "horn": 0.02, "other": 0.03}))
    case = [e for e in sure if e.enforcement]
    assert len(case) == 1, [(e.scores, e.flags, e.levels.lafmax_7p5) for e in sure]
    assert case[0].scores["exhaust"] == pytest.approx(0.7, abs=1e-4)  # under the 0.8 gate on its own
    assert case[0].enforcement_score == pytest.approx(0.7 / 0.75, abs=1e-4)
    assert case[0].to_data()["enforcement_score"] == case[0].enforcement_score  # in the signed record


def test_the_same_mass_on_other_or_horn_still_does():
    for p in ({"exhaust": 0.7, "siren": 0.001, "horn": 0.02, "other": 0.279},
              {"exhaust": 0.7, "siren": 0.02, "horn": 0.25, "other": 0.03}):
        recs = records(constant(p))
        assert recs and not any(e.enforcement for e in recs)
        assert all(e.enforcement_score < 0.8 for e in recs)


def test_a_siren_the_zone_sounds_still_suppresses_and_a_siren_call_never_makes_a_case():
    p = {"exhaust": 0.7, "siren": 0.25, "horn": 0.02, "other": 0.03}
    zoned = records(constant(p), zone=[[0.0, 24.0]])
    assert zoned and all(e.suppressed and not e.enforcement for e in zoned)
    called = records(constant({"exhaust": 0.3, "siren": 0.68, "horn": 0.01, "other": 0.01}))
    assert called and all(e.klass == "siren" and not e.enforcement for e in called)


@given(st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4))
def test_the_score_is_exhaust_given_not_siren(w):
    total = sum(w)
    if total <= 0:
        return
    p = dict(zip(("exhaust", "siren", "horn", "other"), (v / total for v in w), strict=True))
    s = enforcement_score(p)
    assert 0.0 <= s <= 1.0
    assert s >= p["exhaust"] - 1e-12  # never stricter than the exhaust score itself
    if p["siren"] < 1 - 1e-9:
        assert s == pytest.approx(p["exhaust"] / (1 - p["siren"]), rel=1e-6, abs=1e-9)
