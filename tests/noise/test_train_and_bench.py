"""`dozor noise train` and `bench.noise_accuracy` as docs/benchmarks.md shows them (small sizes), and the scoring."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bench import noise_accuracy
from bench.noise_scoring import level_error_parts, level_errors, score_scene, wilson
from dozor.cli import app
from dozor.commands import noise_train
from dozor.commands.noise_train import label_event, textured
from gateway.noise.model import CLASSES, FEATURES, fit, parse

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture(scope="module")
def shared_scenes():
    """One scene's labelled events are a function of its generator, seed and texture alone, and the corpora of this
    module's training tests overlap: scenes 0-19 of seed 3 (the reproducibility test), of which the plain run of the
    texture test takes 0-11 and the textured run the even ones (``textured(i, 0.5)`` is off there), and the further
    generators' test 0-5. Each distinct scene runs through the generator and the gateway's pipeline once per
    module, here (``_scene_rows``, ``_family_rows`` memoised by their arguments; every caller gets its own copy);
    what the CLI does with the rows (corpus order, fitting, meta) runs in full for every command."""
    memo: dict[tuple, list] = {}
    real_scene, real_family = noise_train._scene_rows, noise_train._family_rows

    def once(key: tuple, make):
        if key not in memo:
            memo[key] = make()
        return copy.deepcopy(memo[key])

    def scene_rows(seed: int, texture: bool = False):
        return once(("train", seed, bool(texture)), lambda: real_scene(seed, texture))

    def family_rows(family: str, seed: int):
        return once((family, seed), lambda: real_family(family, seed))

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(noise_train, "_scene_rows", scene_rows)
        mp.setattr(noise_train, "_family_rows", family_rows)
        yield memo


def test_documented_commands_exist():
    bench_doc = (ROOT / "docs" / "benchmarks.md").read_text()
    assert "python -m bench.noise_accuracy --family both --scenes 40 --json" in bench_doc
    assert "dozor noise train --scenes 1200 --seed 14 --jobs 2" in bench_doc
    assert "dozor noise train --scenes 1200 --seed 17 --texture 0.5 --jobs 2" in bench_doc
    assert "dozor noise train --scenes 1000 --seed 15 --holdout-scenes 400 --jobs 2" in bench_doc  # thirteenth session
    from gateway.noise.model import DEFAULT_PATH, load

    committed = load(DEFAULT_PATH)  # the page names the command that built the committed model, and its version
    assert f"{committed.meta['trained_by']} --jobs 2" in bench_doc and committed.version in bench_doc
    assert "python -m bench.noise_accuracy --family independent --scenes 8 --runs 2 --json" in bench_doc


def test_train_is_reproducible(tmp_path, shared_scenes):
    corpus, m1, m2 = tmp_path / "corpus.json", tmp_path / "m1.json", tmp_path / "m2.json"
    r1 = runner.invoke(app, ["noise", "train", "--scenes", "20", "--seed", "3", "--out", str(m1),
                             "--corpus", str(corpus), "--json"])
    assert r1.exit_code == 0, r1.output
    out = json.loads(r1.stdout)
    rows = json.loads(corpus.read_text())
    assert rows and {r["label"] for r in rows} <= set(CLASSES) and set(rows[0]["features"]) >= set(FEATURES)
    r2 = runner.invoke(app, ["noise", "train", "--scenes", "20", "--seed", "3", "--out", str(m2),
                             "--corpus", str(corpus), "--json"])
    assert r2.exit_code == 0, r2.output
    assert json.loads(r2.stdout)["version"] == out["version"] == parse(m1.read_text()).version
    assert m1.read_bytes() == m2.read_bytes()
    for garbage in ("{not json", json.dumps([{"features": {}, "label": "exhaust"}]), json.dumps({"a": 1})):
        (tmp_path / "garbage.json").write_text(garbage)
        bad = runner.invoke(app, ["noise", "train", "--out", str(tmp_path / "x.json"),
                                  "--corpus", str(tmp_path / "garbage.json"), "--json"])
        assert bad.exit_code == 2 and "training failed" in json.loads(bad.stdout)["error"]
        assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 1.0])
def test_texture_share_is_spread_evenly_over_the_corpus(share):
    for n in (8, 40, 1200):
        flags = [textured(i, share) for i in range(n)]
        assert sum(flags) == int(n * share)
        assert all(sum(flags[a:a + 4]) >= int(4 * share) for a in range(0, n, 4))  # no long plain or textured runs
    assert not any(textured(i, 0.0) for i in range(100))  # the default corpus is the pre-texture one


def test_train_with_textured_scenes_records_the_share(tmp_path, shared_scenes):
    out, plain = tmp_path / "m.json", tmp_path / "plain.json"
    args = ["noise", "train", "--scenes", "12", "--seed", "3", "--json"]
    r = runner.invoke(app, [*args, "--texture", "0.5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    meta = json.loads(out.read_text())["meta"]
    assert meta["trained_by"] == "dozor noise train --scenes 12 --seed 3 --texture 0.5"
    assert meta["texture_share"] == 0.5
    r0 = runner.invoke(app, [*args, "--out", str(plain)])
    assert r0.exit_code == 0, r0.output
    assert "texture_share" not in json.loads(plain.read_text())["meta"]
    assert json.loads(r.stdout)["version"] != json.loads(r0.stdout)["version"]  # textured scenes: another corpus
    bad = runner.invoke(app, [*args, "--texture", "1.5", "--out", str(tmp_path / "x.json")])
    assert bad.exit_code != 0 and not (tmp_path / "x.json").exists()


def test_train_on_further_generators_too_records_them_and_the_bench_says_they_are_not_held_out(tmp_path,
                                                                                               shared_scenes):
    """``--holdout-scenes``, ``--kerbside-scenes``, ``--junction-scenes`` and ``--boulevard-scenes`` add scenes of
    ``simulators.holdout_scenes``, ``kerbside_scenes``, ``junction_scenes`` and ``boulevard_scenes`` to the corpus
    (after the training family's, in that order whatever the order of the flags, labelled the same way); the
    model's meta names the families, and ``bench.noise_accuracy`` then marks them ``in_training`` (they no longer
    measure generalisation; the independent family does)."""
    out, corpus = tmp_path / "m.json", tmp_path / "c.json"
    args = ["noise", "train", "--scenes", "6", "--seed", "3", "--json"]
    r = runner.invoke(app, [*args, "--boulevard-scenes", "2", "--holdout-scenes", "3", "--kerbside-scenes", "2",
                            "--junction-scenes", "2", "--out", str(out), "--corpus", str(corpus)])
    assert r.exit_code == 0, r.output
    meta = json.loads(out.read_text())["meta"]
    assert meta["trained_by"] == ("dozor noise train --scenes 6 --seed 3 --holdout-scenes 3 --kerbside-scenes 2"
                                  " --junction-scenes 2 --boulevard-scenes 2")
    assert meta["families"] == ["train", "holdout", "kerbside", "junction", "boulevard"]
    assert (meta["holdout_scenes"], meta["kerbside_scenes"], meta["junction_scenes"], meta["boulevard_scenes"]) \
        == (3, 2, 2, 2)
    from dozor.commands.noise_train import _family_rows, _scene_rows

    plain = [lab for i in range(6) for _, lab in _scene_rows(3 * 100_003 + i)]
    further = {fam: [lab for i in range(n) for _, lab in _family_rows(fam, 3 * 100_003 + i)]
               for fam, n in (("holdout", 3), ("kerbside", 2), ("junction", 2), ("boulevard", 2))}
    assert all(further.values()), f"every further generator's scenes give labelled events: {further}"
    assert [row["label"] for row in json.loads(corpus.read_text())] == plain + [
        lab for fam in ("holdout", "kerbside", "junction", "boulevard") for lab in further[fam]]
    model = parse(out.read_text())
    noise_accuracy.classifier.use_model(model)
    try:
        assert noise_accuracy.trained_families() == ["train", "holdout", "kerbside", "junction", "boulevard"]
        assert noise_accuracy.run_family("junction", 1, 5, 4.0, 2.0)["in_training"] is True
        assert noise_accuracy.run_family("boulevard", 1, 5, 4.0, 2.0)["in_training"] is True
        assert noise_accuracy.run_family("independent", 1, 5, 4.0, 2.0)["in_training"] is False
    finally:
        noise_accuracy.classifier.reset_model()
    assert noise_accuracy.trained_families() == list(noise_accuracy.classifier.current_model().meta.get(
        "families", ["train"]))


def test_fit_separates_separable_classes():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    x = rng.normal(0, 1, (200, len(FEATURES))) + y[:, None] * 3.0
    m = fit(x, y, seed=1, epochs=400)
    assert np.mean(m.proba(x).argmax(axis=1) == y) > 0.95
    assert parse(m.to_json()).version == m.version


def test_label_of_an_event_is_the_source_that_made_it():
    labels = {"distance_m": 7.5, "sources": [
        {"kind": "exhaust_car", "class": "exhaust", "t_peak": 10.0, "lafmax_7p5_db": 100.0, "lafmax_mic_db": 100.0},
        {"kind": "horn", "class": "horn", "t_peak": 10.5, "lafmax_7p5_db": 88.0, "lafmax_mic_db": 88.0},
        {"kind": "legal_car", "class": "other", "t_peak": 30.0, "lafmax_7p5_db": 75.0, "lafmax_mic_db": 75.0}]}
    assert label_event(labels, 8.0, 12.0, 100.2) == "exhaust"
    assert label_event(labels, 29.0, 31.0, 86.0) == "other"  # nothing labelled explains 86 dB
    labels["sources"][1]["lafmax_mic_db"] = 99.0
    assert label_event(labels, 8.0, 12.0, 100.2) is None  # exhaust and horn within 3 dB: ambiguous


@given(st.integers(0, 500), st.integers(0, 500))
def test_wilson_interval_contains_the_estimate(k, extra):
    n = k + extra
    ci = wilson(k, n)
    if n == 0:
        assert ci is None
        return
    assert 0.0 <= ci[0] <= k / n + 1e-9 and k / n - 1e-9 <= ci[1] <= 1.0


class _E:
    def __init__(self, start, end, klass="exhaust", enforcement=False, lafmax=100.0, flags=(), peak=None):
        from types import SimpleNamespace

        self.start, self.end, self.klass, self.enforcement, self.flags = start, end, klass, enforcement, flags
        self.peak = (start + end) / 2 if peak is None else peak
        self.suppressed, self.candidate = False, True
        self.levels = SimpleNamespace(lafmax=lafmax, lafmax_7p5=lafmax, clipped_samples=0)
        self.scores = {"exhaust": 0.9 if klass == "exhaust" else 0.1}


def test_scoring_counts_horn_and_legal_car_enforcement_cases():
    labels = {"distance_m": 7.5, "sources": [
        {"kind": "horn", "class": "horn", "t_peak": 5.0, "lafmax_7p5_db": 100.0},
        {"kind": "legal_car", "class": "other", "t_peak": 20.0, "lafmax_7p5_db": 80.0},
        {"kind": "exhaust_moto", "class": "exhaust", "t_peak": 40.0, "lafmax_7p5_db": 101.0}]}
    events = [_E(4, 6, enforcement=True), _E(19, 21, enforcement=True), _E(39, 41, enforcement=True)]
    sc = score_scene(labels, events, candidate_db=85, enforcement_db=95, uncertainty_db=2, margin_db=2)
    assert sc["horn_enforcement"] == 1 and sc["legal_enforcement"] == 1 and sc["enf_correct"] == 1
    assert sc["enf_found"] == sc["enf_truth"] == 1 and sc["fp"] == 2 and sc["tp"] == 1


def test_recall_counts_exhausts_and_precision_detections():
    """One detection spanning two loud exhausts finds both (recall 2 of 3: ``found``), and is one true detection
    (``tp``); a second detection of the same exhaust is a true detection too; the third exhaust is missed."""
    labels = {"distance_m": 7.5, "sources": [
        {"kind": "exhaust_car", "class": "exhaust", "t_peak": 10.0, "lafmax_7p5_db": 99.0},
        {"kind": "exhaust_moto", "class": "exhaust", "t_peak": 14.0, "lafmax_7p5_db": 104.0},
        {"kind": "exhaust_car", "class": "exhaust", "t_peak": 40.0, "lafmax_7p5_db": 101.0}]}
    sc = score_scene(labels, [_E(9, 15), _E(13.5, 14.5)], candidate_db=85, enforcement_db=95, uncertainty_db=2,
                     margin_db=2)
    assert (sc["found"], sc["fn"], sc["tp"], sc.get("fp", 0)) == (2, 1, 2, 0)
    sc = score_scene(labels, [_E(9, 15)], candidate_db=85, enforcement_db=95, uncertainty_db=2, margin_db=2)
    assert (sc["found"], sc["fn"], sc["tp"]) == (2, 1, 1)


def test_recall_of_own_maxima_counts_a_case_for_the_vehicle_whose_level_it_states():
    """Two over-limit exhausts 4 s apart: one case spanning both, its maximum the motorcycle's, finds both for
    ``enf_found`` (the bench's recall) but only the motorcycle for ``enf_found_own``; a case of the car's own
    (its maximum 0.5 s from the car's) adds it. Detections likewise (``found``, ``found_own``)."""
    labels = {"distance_m": 7.5, "sources": [
        {"kind": "exhaust_car", "class": "exhaust", "t_peak": 10.0, "lafmax_7p5_db": 104.0},
        {"kind": "exhaust_moto", "class": "exhaust", "t_peak": 14.0, "lafmax_7p5_db": 106.0}]}
    kw = {"candidate_db": 85, "enforcement_db": 95, "uncertainty_db": 2, "margin_db": 2}
    sc = score_scene(labels, [_E(9, 16, enforcement=True, peak=14.2)], **kw)
    assert (sc["enf_truth"], sc["enf_found"], sc["enf_found_own"], sc["found"], sc["found_own"]) == (2, 2, 1, 2, 1)
    sc = score_scene(labels, [_E(9, 16, enforcement=True, peak=14.2), _E(8, 11, enforcement=True, peak=10.5)], **kw)
    assert (sc["enf_found"], sc["enf_found_own"], sc["found_own"]) == (2, 2, 2)
    sc = score_scene(labels, [_E(9, 16, peak=12.0)], **kw)  # a maximum between the two: neither's own
    assert (sc["found"], sc["found_own"], sc.get("enf_found", 0)) == (2, 0, 0)


def test_false_detections_within_a_labelled_exhausts_span_are_told_apart():
    """A car queued at a junction revs at 30 s and launches past the microphone at 48 s (its labelled centre):
    the rev's detection is a false one all the same (not within 1 s of the centre), and ``fp_exhaust_span`` says
    it was a real exhaust's; a detection at 58 s with nothing sounding is false and not in any span."""
    labels = {"distance_m": 7.5, "sources": [
        {"kind": "exhaust_car", "class": "exhaust", "t_peak": 48.0, "t_start": 20.0, "t_end": 52.0,
         "lafmax_7p5_db": 101.0}]}
    sc = score_scene(labels, [_E(30, 31), _E(47, 49), _E(58, 59)], candidate_db=85, enforcement_db=95,
                     uncertainty_db=2, margin_db=2)
    assert (sc["tp"], sc["fp"], sc["fp_exhaust_span"], sc["found"]) == (1, 2, 1, 1)


def test_level_error_is_split_into_the_meter_at_the_microphone_and_the_normalisation():
    """A pass-by 12 m from the lane whose maximum came after closest approach: the event reads the source's own
    LAFmax at the microphone 0.1 dB high, and the point-source rule (+4.08 dB) adds 2 dB more than the label's
    7.5 m truth implies; the split says which part of the error is whose."""
    labels = {"distance_m": 12.0, "sources": [
        {"kind": "exhaust_moto", "class": "exhaust", "t_peak": 10.0, "lafmax_7p5_db": 104.0,
         "lafmax_mic_db": 101.92},
        {"kind": "exhaust_car", "class": "exhaust", "t_peak": 40.0, "lafmax_7p5_db": 100.0}]}
    e1, e2 = _E(8, 12, lafmax=102.02), _E(39, 41, lafmax=97.0)
    e1.levels.lafmax_7p5 = 102.02 + 4.08
    e2.levels.lafmax_7p5 = 101.0
    parts = level_error_parts(labels, [e1, e2])
    assert [round(p["total"], 2) for p in parts] == [2.1, 1.0] == [round(x, 2) for x in level_errors(labels, [e1, e2])]
    assert round(parts[0]["at_mic"], 2) == 0.1 and round(parts[0]["normalisation"], 2) == 2.0
    assert parts[1]["at_mic"] is None and parts[1]["normalisation"] is None  # no lafmax_mic_db in its label
    assert [p["margin"] for p in parts] == [None, None]  # records without an uncertainty block
    from types import SimpleNamespace

    e1.uncertainty, e2.uncertainty = SimpleNamespace(margin_db=2.2), SimpleNamespace(margin_db=4.1)
    assert [p["margin"] for p in level_error_parts(labels, [e1, e2])] == [2.2, 4.1]  # +2.1 and +1.0: both within


def test_a_pass_by_with_a_loud_source_sounding_during_its_event_is_not_isolated():
    """The independent family's seed 16585 scene 5: a 114 dB two-tone horn peaks 5.5 s before a 96 dB exhaust
    and sounds on into the exhaust's event, which reads the horn's tail (+9.85 dB at the microphone). The horn
    is neither within 5 s of the exhaust's peak nor covered by its event, but its own span overlaps the event:
    the pass-by is not isolated, so its level error is not the meter's."""
    horn = {"kind": "horn_two_tone", "class": "horn", "t_peak": 35.5, "t_start": 34.9, "t_end": 40.4,
            "lafmax_7p5_db": 111.2, "lafmax_mic_db": 114.0}
    moto = {"kind": "exhaust_moto", "class": "exhaust", "t_peak": 41.0, "t_start": 37.6, "t_end": 45.4,
            "lafmax_7p5_db": 94.0, "lafmax_mic_db": 96.2}
    ev = _E(36.8, 42.7, lafmax=106.1)
    assert level_error_parts({"distance_m": 5.49, "sources": [horn, moto]}, [ev]) == []
    quiet = {**horn, "t_end": 36.5}  # the horn stops before the event: the pass-by is isolated again
    assert len(level_error_parts({"distance_m": 5.49, "sources": [quiet, moto]}, [ev])) == 1


def test_scoring_attributes_horn_and_legal_car_cases_by_level_and_counts_exhaust_pieces():
    """The held-out family's seed 32025: a piece of a 106 dB (at the mic) straight pipe's pass-by, split off
    3 s before its peak, covers a horn 12 dB quieter (not horn-caused by level); another covers a horn 5 dB
    under the event (horn-caused by level too); a tail piece covers only a quiet legal car. All three lie in
    an over-limit exhaust's span: exhaust pieces. A horn alone at the event's level stays horn-caused."""
    labels = {"distance_m": 14.0, "sources": [
        {"kind": "exhaust_car", "class": "exhaust", "t_peak": 45.3, "t_start": 41.0, "t_end": 50.0,
         "lafmax_7p5_db": 111.4, "lafmax_mic_db": 106.4},
        {"kind": "horn_single", "class": "horn", "t_peak": 43.2, "lafmax_7p5_db": 92.7, "lafmax_mic_db": 87.9},
        {"kind": "exhaust_moto", "class": "exhaust", "t_peak": 31.4, "t_start": 23.5, "t_end": 32.0,
         "lafmax_7p5_db": 115.1, "lafmax_mic_db": 114.9},
        {"kind": "horn_single", "class": "horn", "t_peak": 23.5, "lafmax_7p5_db": 106.1, "lafmax_mic_db": 102.7},
        {"kind": "legal_car", "class": "other", "t_peak": 54.6, "lafmax_7p5_db": 77.5, "lafmax_mic_db": 72.3},
        {"kind": "exhaust_car", "class": "exhaust", "t_peak": 49.2, "t_start": 40.7, "t_end": 57.7,
         "lafmax_7p5_db": 109.9, "lafmax_mic_db": 104.5},
        {"kind": "horn_single", "class": "horn", "t_peak": 80.0, "lafmax_7p5_db": 108.0, "lafmax_mic_db": 103.0}]}
    events = [_E(40.7, 42.4, enforcement=True, lafmax=99.2), _E(20.0, 29.3, enforcement=True, lafmax=107.3),
              _E(55.3, 58.0, enforcement=True, lafmax=94.2), _E(79.0, 81.0, enforcement=True, lafmax=103.0)]
    sc = score_scene(labels, events, candidate_db=85, enforcement_db=95, uncertainty_db=2, margin_db=2)
    assert sc["enf_wrong"] == 4 and sc["horn_enforcement"] == 3 and sc["legal_enforcement"] == 1
    assert sc["horn_level_enforcement"] == 2 and sc.get("legal_level_enforcement", 0) == 0
    assert sc["exhaust_piece_enforcement"] == 3


def test_scoring_says_why_an_enforcement_case_was_missed():
    labels = {"distance_m": 7.5, "sources": [
        {"kind": "exhaust_car", "class": "exhaust", "t_peak": t, "lafmax_7p5_db": 102.0} for t in (5, 20, 35, 50, 65)]}
    low = _E(49, 51)
    low.scores = {"exhaust": 0.5}
    events = [_E(19, 21, klass="other"), _E(34, 36, flags=("horn_tones",)), low,
              _E(64, 66, flags=("clipped",)), _E(64.5, 65.5, klass="horn", lafmax=90.0)]
    sc = score_scene(labels, events, candidate_db=85, enforcement_db=95, uncertainty_db=2, margin_db=2)
    assert sc["enf_truth"] == 5 and sc.get("enf_found", 0) == 0
    assert {k: v for k, v in sc.items() if k.startswith("enf_miss:")} == {
        "enf_miss:no_event": 1, "enf_miss:class_other": 1, "enf_miss:flag_horn_tones": 1, "enf_miss:low_score": 1,
        "enf_miss:clipped": 1}
    assert sc["enf_missed_clipped"] == 1


def test_benchmark_runs_on_the_training_family(capsys):
    assert noise_accuracy.main(["--family", "train", "--scenes", "1", "--seed", "5", "--duration", "20",
                                "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    fam = out["families"]["train"]
    assert out["seed"] == 5 and fam["scenes"] == 1 and out["model"].startswith(("mlp-", "rules-"))
    for key in ("exhaust", "enforcement", "confusion", "level_error_7p5_db", "tonal_false_alarms"):
        assert key in fam
    assert {"precision", "recall", "f1"} <= set(fam["exhaust"])
    assert {"siren_caused", "horn_caused", "legal_car_caused", "recall_3db_over", "miss_reasons"} <= set(
        fam["enforcement"])


@pytest.mark.parametrize("family", ["independent"])
def test_independent_family_is_scored_only_through_its_interface(family):
    res = noise_accuracy.run_family(family, 0, 1, None, 2.0)
    assert res["family"] == family and ("error" in res or res["scenes"] == 0)


def test_a_corpus_refuses_a_family_it_does_not_know():
    from dozor.commands.noise_train import EXTRA_FAMILIES, build_corpus

    with pytest.raises(ValueError, match="unknown scene families"):
        build_corpus(0, 3, extra_scenes={"motorway": 1})
    assert list(EXTRA_FAMILIES) == ["holdout", "kerbside", "junction", "boulevard"]  # the corpus order
