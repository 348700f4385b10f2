"""The score an enforcement case needs (``gateway.noise.rules.enforcement_score``): the classifier's exhaust
probability once the siren probability that only the event's *shape* carries (``classifier.shape_siren``:
``duration_s`` and ``onset``) is set aside. Siren mass from anything else, and all horn and other mass, count."""

from __future__ import annotations

import dataclasses
import functools
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
P0 = {"exhaust": 0.9, "siren": 0.04, "horn": 0.03, "other": 0.03}  # at the training means


def model_with(feature: str | None, gain: float = 0.0, p: dict[str, float] = P0):
    """The committed model's shape: class probabilities ``p`` at the training means, plus ``gain`` on the siren
    logit times tanh of ``feature``'s z-score (no feature: ``p`` whatever it hears)."""
    m = load(DEFAULT_PATH)
    w1, w2 = np.zeros_like(m.w1), np.zeros_like(m.w2)
    if feature is not None:
        w1[m.features.index(feature), 0] = 1.0
        w2[0, m.classes.index("siren")] = gain
    b2 = np.array([math.log(p[k]) for k in m.classes])
    return dataclasses.replace(m, w1=w1, w2=w2, b1=np.zeros_like(m.b1), b2=b2, meta={})


@functools.cache
def _scene():
    return generate(13, duration_s=24.0, mix=ALONE)  # one loud lone exhaust pass-by


def records(model, zone=None):
    scene = _scene()
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]))
    classifier.use_model(model)
    try:
        return analyze_array(scene.audio, cfg, zone_intervals=zone)[1]
    finally:
        classifier.reset_model()


def _loud(recs):
    return max(recs, key=lambda e: e.levels.lafmax)


def _gain_for(feature: str, target: float) -> float:
    """The siren gain that gives the loud event of the scene a siren probability of about ``target``."""
    z = (_loud(records(model_with(None)))).features[feature]
    m = load(DEFAULT_PATH)
    zs = math.tanh((z - m.mean[m.features.index(feature)]) / m.std[m.features.index(feature)])
    odds = target / (1 - target) / (P0["siren"] / (1 - P0["siren"]))
    return math.log(odds) / zs


def test_siren_mass_the_events_shape_carries_does_not_hold_back_a_case():
    """A model whose siren probability grows with ``duration_s`` (a long pass-by looks like a siren to it)."""
    gain = _gain_for("duration_s", 0.3)
    e = _loud(records(model_with("duration_s", gain)))
    assert e.scores["siren"] == pytest.approx(0.3, abs=0.03) and e.scores["exhaust"] < 0.8
    assert e.enforcement_score == pytest.approx(e.scores["exhaust"] / (1 - (e.scores["siren"] - 0.04)), abs=2e-3)
    assert e.enforcement and e.enforcement_score >= 0.8
    assert e.to_data()["enforcement_score"] == e.enforcement_score  # in the signed record


def test_siren_mass_the_spectrum_carries_still_does():
    """The same siren probability, grown from ``high_frac`` (a wail's energy above 2 kHz) or present whatever
    the event sounds like: set aside nothing, no case."""
    gain = _gain_for("high_frac", 0.3)
    for m in (model_with("high_frac", gain), model_with(None, p={"exhaust": 0.66, "siren": 0.3, "horn": 0.02,
                                                                   "other": 0.02})):
        e = _loud(records(m))
        assert e.scores["siren"] == pytest.approx(0.3, abs=0.03)
        assert e.enforcement_score == pytest.approx(e.scores["exhaust"], abs=1e-4) and not e.enforcement


def test_horn_or_other_mass_counts_the_zone_suppresses_and_a_siren_call_never_makes_a_case():
    for p in ({"exhaust": 0.7, "siren": 0.001, "horn": 0.02, "other": 0.279},
              {"exhaust": 0.7, "siren": 0.02, "horn": 0.25, "other": 0.03}):
        recs = records(model_with(None, p=p))
        assert recs and not any(e.enforcement for e in recs)
    gain = _gain_for("duration_s", 0.3)
    zoned = records(model_with("duration_s", gain), zone=[[0.0, 24.0]])
    assert zoned and all(e.suppressed and not e.enforcement for e in zoned)
    called = records(model_with(None, p={"exhaust": 0.3, "siren": 0.68, "horn": 0.01, "other": 0.01}))
    assert called and all(e.klass == "siren" and not e.enforcement for e in called)


@given(st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4), st.floats(0.0, 1.0))
def test_the_score_sets_aside_at_most_the_shapes_siren_mass(w, share):
    total = sum(w)
    if total <= 0:
        return
    p = dict(zip(("exhaust", "siren", "horn", "other"), (v / total for v in w), strict=True))
    shape = share * p["siren"]
    s = enforcement_score(p, shape)
    assert p["exhaust"] - 1e-12 <= s <= 1.0  # never stricter than the exhaust score itself
    assert s <= p["exhaust"] / (1 - p["siren"]) + 1e-9 if p["siren"] < 1 else True
    assert enforcement_score(p, 0.0) == pytest.approx(p["exhaust"])
