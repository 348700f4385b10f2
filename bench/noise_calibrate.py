"""Choose a classifier model's enforcement score (``meta.min_exhaust_score``) on scenes of the families it learned from.

    python -m bench.noise_calibrate --scenes 40 --seed 2027 [--model gateway/noise/models/classifier.json] [--write] [--json]

Why: an enforcement case needs the event called ``exhaust`` with a score of at least ``min_exhaust_score``, on top
of the level, the suppression and the feature rules. The scores of two models are not on the same scale (a model
fitted on two generators is less sure of itself than one fitted on one, docs/benchmarks.md, issue 13), so the
score a case needs belongs to the model, not to the pipeline.

How: ``--scenes`` fresh scenes of every family in the model's ``meta.families`` (scene i of a family: seed
``S * 100_003 + i``, never the corpus's seeds unless ``S`` is the training seed) are analysed once with the score
gate at its floor (``AnalyzerConfig.min_exhaust_score`` = ``FLOOR``); every case is kept with its score, so each
candidate score ``t`` of ``GRID`` is scored exactly (a case stands at ``t`` iff its score is >= ``t``; nothing else
depends on it). The chosen score is the lowest ``t`` of ``GRID`` that:

- leaves no case caused by a siren, a horn or a legal car (``bench.noise_scoring``: siren-caused, horn-caused,
  legal-car-caused, each also by level), and
- lies at least ``GUARD`` above the score of every such case found at the floor, so the choice does not sit on
  the edge of one scene's case.

``FLOOR`` is 0.6, not 0.5: the score is a probability learned from synthetic scenes, and a case should need the
model to prefer ``exhaust`` clearly over everything else together. The independent family
(``simulators.street_scenes``) is refused: it measures generalisation and must never choose a parameter.
``--write`` stores the choice in the model file's ``meta`` (``min_exhaust_score``, ``min_exhaust_score_by``: the
command); the model's version hashes its weights only, so it does not change, and every evidence record states
the score it used (``thresholds.min_exhaust_score``). Exit codes: 0 chosen (and written), 1 no score of the grid
qualifies (nothing written), 2 bad arguments.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.noise_accuracy import FAMILIES, RECOMMENDED_FULL_SCALE_DB  # noqa: E402
from bench.noise_accuracy import analyze as bench_analyze  # noqa: E402
from bench.noise_scoring import score_scene  # noqa: E402
from gateway.noise import classifier  # noqa: E402
from gateway.noise.detector import DetectorConfig  # noqa: E402
from gateway.noise.model import DEFAULT_PATH, ModelError, load  # noqa: E402
from gateway.noise.siren_cut import case_score  # noqa: E402

FLOOR = 0.6
GUARD = 0.05
GRID = tuple(round(FLOOR + 0.05 * i, 2) for i in range(8))  # 0.6 .. 0.95
CAUSED = ("siren_enforcement", "horn_enforcement", "legal_enforcement", "horn_level_enforcement",
          "legal_level_enforcement")
NOT_FOR_CALIBRATION = {"independent"}


def analyze(scene, model) -> list:
    """Every event of one scene, with cases made at the ``FLOOR`` score (``bench.noise_accuracy.analyze``)."""
    classifier.use_model(model)
    return bench_analyze(scene, min_exhaust_score=FLOOR)[0]


def at(events: list, t: float) -> list:
    """The events as they would be with the score gate at ``t`` (cases under it are no cases)."""
    return [e.model_copy(update={"enforcement": False}) if e.enforcement and case_score(e) < t
            else e for e in events]


def scene_of(family: str, seed: int, i: int):
    mod = importlib.import_module(FAMILIES[family])
    if family == "train":
        return mod.generate(seed * 100_003 + i, full_scale_db=None, mix=mod.STREET_MIX)
    return mod.generate(seed * 100_003 + i, full_scale_db=RECOMMENDED_FULL_SCALE_DB)


def _scene_counts(model, fam: str, seed: int, i: int) -> tuple[dict, list[dict]]:
    """One scene: the bench's counters at every score of the grid, and the cases caused by others at the floor."""
    det = DetectorConfig()
    scene = scene_of(fam, seed, i)
    events = analyze(scene, model)
    kw = {"candidate_db": det.candidate_db, "enforcement_db": det.enforcement_db,
          "uncertainty_db": det.uncertainty_db, "margin_db": 2.0}
    per_t = {t: score_scene(scene.labels, at(events, t), **kw) for t in GRID}
    caused = []
    for e in events:
        if e.enforcement:
            why = [k for k in CAUSED if score_scene(scene.labels, [e], **kw).get(k)]
            if why:
                caused.append({"family": fam, "scene": i, "start": round(e.start, 2),
                               "score": round(case_score(e), 4), "caused": why})
    return per_t, caused


def calibrate(model, families: list[str], scenes: int, seed: int, progress=None, jobs: int = 1) -> dict:
    per_t = {t: Counter() for t in GRID}
    caused_scores: list[dict] = []
    tasks = [(fam, i) for fam in families for i in range(scenes)]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as ex:
            results = ex.map(_scene_counts, [model] * len(tasks), [f for f, _ in tasks], [seed] * len(tasks),
                             [i for _, i in tasks])
            done = list(results)
    else:
        done = []
        for fam, i in tasks:
            done.append(_scene_counts(model, fam, seed, i))
            if progress:
                progress(f"{fam} {i + 1}/{scenes}")
    for counts, caused in done:  # in task order, whatever the workers' order
        for t in GRID:
            per_t[t].update(counts[t])
        caused_scores += caused
    table = {f"{t:.2f}": {"cases": c["enf_correct"] + c["enf_wrong"], "right": c["enf_correct"],
                          "wrong": c["enf_wrong"], "caused_by_others": sum(c[k] for k in CAUSED[:3]),
                          "truth_found": f"{c['enf_found']}/{c['enf_truth']}"} for t, c in per_t.items()}
    return {"model": model.version, "families": families, "scenes": scenes, "seed": seed, "floor": FLOOR,
            "guard": GUARD, "grid": table, "caused_cases_at_floor": caused_scores,
            "chosen": choose(table, [c["score"] for c in caused_scores])}


def choose(table: dict, caused: list[float]) -> float | None:
    """The lowest score of ``GRID`` with no case caused by others in ``table`` and at least ``GUARD`` above every
    such case's score (``caused``, found at the floor); None if no score of the grid qualifies."""
    worst = max(caused, default=None)
    ok = [t for t in GRID if table[f"{t:.2f}"]["caused_by_others"] == 0 and (worst is None or t >= worst + GUARD - 1e-9)]
    return ok[0] if ok else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_PATH)
    ap.add_argument("--scenes", type=int, default=40, help="scenes per family")
    ap.add_argument("--seed", type=int, default=2027)
    ap.add_argument("--family", action="append", choices=sorted(FAMILIES),
                    help="a family to calibrate on (repeat; default: the model's meta.families)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (scenes are independent)")
    ap.add_argument("--write", action="store_true", help="store the chosen score in the model file's meta")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    try:
        model = load(a.model)
    except (ModelError, OSError, ValueError) as exc:
        print(f"error: cannot load {a.model}: {exc}", file=sys.stderr)
        return 2
    families = a.family or list(model.meta.get("families", ["train"]))
    refused = [f for f in families if f in NOT_FOR_CALIBRATION]
    if refused or a.scenes < 1:
        print(f"error: {', '.join(refused)} measures generalisation and never chooses a parameter" if refused
              else "error: --scenes must be at least 1", file=sys.stderr)
        return 2
    try:
        res = calibrate(model, families, a.scenes, a.seed,
                        None if a.json else (lambda msg: print(msg, file=sys.stderr, flush=True)), max(1, a.jobs))
    finally:
        classifier.reset_model()
    cmd = (f"python -m bench.noise_calibrate --scenes {a.scenes} --seed {a.seed}"
           + "".join(f" --family {f}" for f in a.family or []))
    if res["chosen"] is not None and a.write:
        meta = {**model.meta, "min_exhaust_score": res["chosen"], "min_exhaust_score_by": cmd}
        a.model.write_text(dataclasses.replace(model, meta=meta).to_json() + "\n")
        res["written"] = str(a.model)
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        for t, row in res["grid"].items():
            print(f"  score >= {t}: {row}")
        print(f"chosen min_exhaust_score: {res['chosen']}" + (f" (written to {a.model})" if res.get("written") else ""))
    return 0 if res["chosen"] is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
