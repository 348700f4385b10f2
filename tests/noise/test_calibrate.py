"""The enforcement score belongs to the model (``meta.min_exhaust_score``), chosen by ``bench.noise_calibrate``."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from bench import noise_calibrate as cal
from gateway.noise import classifier
from gateway.noise.detector import DetectorConfig
from gateway.noise.errors import ConfigError
from gateway.noise.model import DEFAULT_PATH, load, parse
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from simulators.noise_scene import generate

NONE = {"exhaust": 1, "legal": 0, "horn": 0.0, "cd_siren": 0.0, "ev_siren": 0.0, "wind": 0.0, "rain": 0.0}


def with_score(model, v):
    return dataclasses.replace(model, meta={**model.meta, "min_exhaust_score": v})


def test_the_model_file_may_name_its_enforcement_score_within_bounds():
    model = load(DEFAULT_PATH)
    assert classifier.min_exhaust_score(with_score(model, 0.65)) == 0.65
    for bad in (0.3, 0.49, 1.0, 7, "0.6", None, True):  # argmax alone, nothing, or not a number: the default
        assert classifier.min_exhaust_score(with_score(model, bad)) == classifier.MIN_EXHAUST_SCORE
    assert with_score(model, 0.65).version == model.version  # the version hashes the weights only
    with pytest.raises(ConfigError):
        AnalyzerConfig(min_exhaust_score=0.4)


def test_the_score_a_case_needs_comes_from_the_model_and_is_stated_in_the_record():
    """One loud lone exhaust: a case with the committed model; none when its model names a score above the
    event's; a case again when the analyser's own setting overrides it. Every record states what it used."""
    scene = generate(13, duration_s=24.0, mix=NONE)
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]))
    model = load(DEFAULT_PATH)

    def cases(m, config=cfg):
        classifier.use_model(m)
        try:
            return [e for e in analyze_array(scene.audio, config)[1] if e.klass == "exhaust"]
        finally:
            classifier.reset_model()

    base = cases(model)
    case = [e for e in base if e.enforcement]
    assert len(case) == 1, [(e.klass, e.scores, e.flags, e.levels.lafmax_7p5) for e in base]
    score = case[0].enforcement_score  # what the gate is applied to (rules.enforcement_score)
    assert case[0].scores["exhaust"] <= score <= 1.0
    assert case[0].thresholds["min_exhaust_score"] == classifier.min_exhaust_score(model)
    above = round(min(score + 0.01, 0.999), 3)
    strict = cases(with_score(model, above))
    assert not any(e.enforcement for e in strict)
    assert all(e.thresholds["min_exhaust_score"] == above for e in strict)
    overridden = cases(with_score(model, above), dataclasses.replace(cfg, min_exhaust_score=0.6))
    assert [e.enforcement for e in overridden] == [e.enforcement for e in base]
    assert all(e.thresholds["min_exhaust_score"] == 0.6 for e in overridden)


def row(caused: int) -> dict:
    return {"cases": 3, "right": 3 - caused, "wrong": caused, "caused_by_others": caused, "truth_found": "3/4"}


@pytest.mark.parametrize(("caused_at", "expected"), [
    ([], 0.6),              # nothing caused by others: the floor
    ([0.71], 0.8),          # a yelp-caused case at 0.71: the grid's first score 0.05 above it
    ([0.62, 0.74], 0.8),
    ([0.75], 0.8),          # exactly the guard above
    ([0.96], None),         # nothing in the grid is 0.05 above it: no choice, nothing written
])
def test_the_lowest_score_clear_of_every_case_caused_by_others_is_chosen(caused_at, expected):
    table = {f"{t:.2f}": row(sum(1 for c in caused_at if c >= t)) for t in cal.GRID}
    assert cal.choose(table, caused_at) == expected


def test_the_independent_family_never_chooses_a_parameter(capsys):
    assert cal.main(["--family", "independent", "--scenes", "1"]) == 2
    assert "generalisation" in capsys.readouterr().err
    assert cal.main(["--model", "/nonexistent/model.json", "--scenes", "1"]) == 2


def test_calibrate_writes_its_choice_into_the_model_file(tmp_path, capsys):
    path = tmp_path / "classifier.json"
    shutil.copy(DEFAULT_PATH, path)
    before = load(path)
    code = cal.main(["--model", str(path), "--scenes", "1", "--seed", "3", "--family", "holdout", "--write", "--json",
                     "--jobs", "2"])
    res = json.loads(capsys.readouterr().out)
    cases = [res["grid"][f"{t:.2f}"]["cases"] for t in cal.GRID]
    assert cases == sorted(cases, reverse=True)  # a higher score never makes more cases
    assert res["families"] == ["holdout"] and res["model"] == before.version
    after = parse(path.read_text())
    assert after.version == before.version
    if code == 0:
        assert after.meta["min_exhaust_score"] == res["chosen"] and res["written"] == str(path)
        assert after.meta["min_exhaust_score_by"] == "python -m bench.noise_calibrate --scenes 1 --seed 3 --family holdout"
        assert {k: v for k, v in after.meta.items() if not k.startswith("min_exhaust")} == before.meta
    else:
        assert code == 1 and res["chosen"] is None and after.meta == before.meta
