"""Accuracy of the noise pipeline on simulated street scenes with ground truth, per scene family.

    python -m bench.noise_accuracy --family both --scenes 40 --json [--seed S] [--runs R] [--full-scale-db DB]

Families: ``train`` = ``simulators.noise_scene`` (what the classifier is trained on; random ranges declared in
``simulators.noise_sources``), ``independent`` = ``simulators.street_scenes`` (written from a separate spec by
someone who did not read the classifier; used here only through ``generate(seed, duration_s, fs)``),
``holdout`` = ``simulators.holdout_scenes``, ``kerbside`` = ``simulators.kerbside_scenes``, ``junction`` =
``simulators.junction_scenes`` and ``boulevard`` = ``simulators.boulevard_scenes`` (a third to a sixth generator,
each written without reading the others' code nor the classifier; docs/noise-scenes.md).
Microphone: the training family draws its full scale per scene (120-135 dB); every other family is
generated with the recommended 130 dB full-scale microphone (``--full-scale-db`` changes it; 120 models a
-26 dBFS MEMS part that clips on loud exhausts). The training family uses ``noise_scene.STREET_MIX`` (every
source kind of its declared ranges). Scene i of a family uses seed ``S * 100_003 + i``; ``S`` is drawn from os.urandom unless ``--seed`` is
given, and is printed so a run can be repeated. Each scene is analysed with the microphone's full scale,
distance and (where labelled) height from its labels, and the hub's siren zone intervals if the labels have them.

Reported per family, with 95 % Wilson intervals: exhaust precision (of detections), recall (of labelled exhausts:
``found`` of ``found + fn``, so one detection spanning two exhausts finds both; before the twenty-second session
it was ``tp / (tp + fn)``, the same while one detection covered one exhaust) and F1; enforcement precision and
recall (exhausts >= 3 dB over the limit); siren-, horn- and legal-car-caused enforcement cases (horn and legal
car also by level: ``horn_caused_by_level``, ``legal_car_caused_by_level``; and ``exhaust_piece``, wrong cases
inside an over-limit exhaust's own span: pieces of its pass-by split off by the detector); of the false exhaust
detections, ``fp_in_exhaust_span``: those within a labelled exhaust's sounding span (+-1 s), though not within 1 s
of its centre (a queued car's revs, an approach split off: a real exhaust, scored false all the same);
``recall_own_maximum`` (``exhaust``) and ``recall_3db_over_own_maximum`` (``enforcement``), twenty-fifth session:
recall counting only a detection (a case) whose maximum lies within 1 s of the exhaust's labelled one
(``noise_scoring._own``), so its level is that vehicle's: a long event that spans two vehicles, or a vehicle and
the horn that made its maximum, finds both for ``recall``, but a case names one level; the confusion
matrix; the level error at 7.5 m of isolated pass-bys (also split into `at_mic`, the error of the event's
LAFmax at the microphone, and `normalisation`, the rest: the correction to 7.5 m; ``within_margin``, the share
whose truth lies within +- the record's own margin, and ``over_margin``, how many stated more than the margin over
the truth: the uncertainty budget's claim, checked); the local tonal detector's false alarms (share of
8 Hz frames inside tonal runs, on scenes without sirens or horns); why each missed enforcement case was
missed (``enforcement.miss_reasons``, aggregate counts). Definitions: ``bench.noise_scoring``. Each family
also says ``in_training``: whether the current model was fitted on it (the model's ``meta.families``; the
committed model is fitted on ``train``, ``holdout`` and ``kerbside``, so ``independent``, ``junction`` and
``boulevard`` are held out).

``--siren-free-texture`` (training family only): the mix turns the sixth-pass textures on (``texture`` 1.0) and
every horn and siren off (``SIREN_FREE_TEXTURE``), so ``tonal_false_alarms`` covers every scene: the issue 13
measure of the local tonal detector against fast engines behind textured colourings (docs/benchmarks.md,
thirteenth session).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import numpy as np  # noqa: E402

from bench.noise_scoring import level_error_parts, level_errors, ratio, score_scene, siren_level_during  # noqa: E402,F401
from gateway.noise import classifier  # noqa: E402
from gateway.noise.detector import DetectorConfig  # noqa: E402
from gateway.noise.dsp import MeterConfig  # noqa: E402
from gateway.noise.pipeline import AnalyzerConfig, NoiseAnalyzer  # noqa: E402

FAMILIES = {"train": "simulators.noise_scene", "independent": "simulators.street_scenes",
            "holdout": "simulators.holdout_scenes",  # holdout: a third generator, docs/noise-scenes.md
            "kerbside": "simulators.kerbside_scenes",  # a fourth, differently written one (street canyon)
            "junction": "simulators.junction_scenes",  # a fifth: a signalised junction, resonator-bank engines
            "boulevard": "simulators.boulevard_scenes"}  # a sixth: a wide avenue, sinusoids-plus-noise engines
# the microphone the docs recommend for enforcement (IM69D130 class, docs/noise-uncertainty.md): the independent
# family is generated with it unless --full-scale-db says otherwise (its generator's own default is 120 dB)
RECOMMENDED_FULL_SCALE_DB = 130.0
# the training mix with textures on and every horn and siren off (--siren-free-texture)
SIREN_FREE_TEXTURE = {"texture": 1.0, "horn": 0.0, "cd_siren": 0.0, "ev_siren": 0.0, "far_siren": 0.0,
                      "horn_passby": 0.0}


def analyze(scene, min_exhaust_score: float | None = None) -> tuple[list, dict]:
    """Every event of one scene (the microphone, distance and height from its labels, the hub's zone intervals)
    and the local tonal detector's frame counts; ``min_exhaust_score`` overrides the model's (what-ifs)."""
    lab = scene.labels
    cfg = AnalyzerConfig(meter=MeterConfig(fs=scene.fs, full_scale_db=float(lab.get("full_scale_db", 120.0))),
                         detector=DetectorConfig(distance_m=float(lab["distance_m"]),
                                                 mic_height_m=lab.get("mic_height_m")),
                         min_exhaust_score=min_exhaust_score)
    an = NoiseAnalyzer(cfg)
    for a, b in lab.get("zone_siren_active") or []:
        an.suppressor.add_zone_interval(a, b)
    events = []
    for i in range(0, scene.audio.size, scene.fs):
        events += an.feed(scene.audio[i: i + scene.fs]).events
    events += an.close().events
    s = an.suppressor
    return events, {"frames": s.frames_seen, "run_frames": s.run_frames}


def run_family(name: str, scenes: int, seed: int, duration: float | None, margin_db: float,
               verbose: bool = False, full_scale_db: float | None = None, siren_free_texture: bool = False) -> dict:
    try:
        mod = importlib.import_module(FAMILIES[name])
    except ImportError as exc:
        return {"family": name, "error": f"{FAMILIES[name]} is not available ({exc})"}
    det = DetectorConfig()
    total: Counter[str] = Counter()
    errors: list[float] = []
    covered: list[tuple[float, float]] = []  # (level error, the record's margin) of the same pass-bys
    parts: dict[str, list[float]] = {"at_mic": [], "normalisation": []}
    fa_frames = fa_runs = 0
    audio_s = t_an = 0.0
    for i in range(scenes):
        s_seed = seed * 100_003 + i
        kw = {"duration_s": duration} if duration else {}
        if name == "train":
            kw["full_scale_db"] = full_scale_db  # None: drawn per scene (120, 130, 130 or 135 dB)
            kw["mix"] = {**mod.STREET_MIX, **SIREN_FREE_TEXTURE} if siren_free_texture else mod.STREET_MIX
        elif full_scale_db is not None:
            kw["full_scale_db"] = full_scale_db
        scene = mod.generate(s_seed, **kw)
        t1 = time.perf_counter()
        events, tonal = analyze(scene)
        t_an += time.perf_counter() - t1
        audio_s += scene.audio.size / scene.fs
        sc = score_scene(scene.labels, events, candidate_db=det.candidate_db, enforcement_db=det.enforcement_db,
                         uncertainty_db=det.uncertainty_db, margin_db=margin_db)
        if not any(s.get("class") in ("siren", "horn") for s in scene.labels["sources"]):
            fa_frames += tonal["frames"]
            fa_runs += tonal["run_frames"]
        for part in level_error_parts(scene.labels, events):
            errors.append(part["total"])
            if part["margin"] is not None:
                covered.append((part["total"], part["margin"]))
            for k, lst in parts.items():
                if part[k] is not None:
                    lst.append(part[k])
        if verbose and (sc.get("fp") or sc.get("fn") or sc.get("enf_wrong") or sc.get("siren_enforcement")):
            print(f"{name} seed {s_seed}: {sc}", file=sys.stderr)
        total.update(sc)
    tp, fp, fn, found = total["tp"], total["fp"], total["fn"], total["found"]
    prec, rec = ratio(tp, tp + fp), ratio(found, found + fn)
    p, r = prec["value"], rec["value"]
    err = np.array(errors)
    return {
        "family": name, "module": FAMILIES[name], "scenes": scenes, "seed": seed, "audio_s": round(audio_s, 1),
        "in_training": name in trained_families(),
        "full_scale_db": full_scale_db if full_scale_db is not None else "drawn per scene",
        "exhaust": {"precision": prec, "recall": rec,
                    "f1": round(2 * p * r / (p + r), 4) if p and r else None,
                    "tp": tp, "fp": fp, "fn": fn, "found": found, "ignored_ambiguous": total["ignored"],
                    "fp_in_exhaust_span": total["fp_exhaust_span"],
                    "recall_own_maximum": ratio(total["found_own"], found + fn)},
        "enforcement": {"precision": ratio(total["enf_correct"], total["enf_correct"] + total["enf_wrong"]),
                        "recall_3db_over": ratio(total["enf_found"], total["enf_truth"]),
                        "recall_3db_over_own_maximum": ratio(total["enf_found_own"], total["enf_truth"]),
                        "missed_while_clipped": total["enf_missed_clipped"],
                        "siren_caused": total["siren_enforcement"],
                        "siren_overlap": total["siren_overlap_enforcement"],
                        "horn_caused": total["horn_enforcement"], "legal_car_caused": total["legal_enforcement"],
                        "horn_caused_by_level": total["horn_level_enforcement"],
                        "legal_car_caused_by_level": total["legal_level_enforcement"],
                        "exhaust_piece": total["exhaust_piece_enforcement"],
                        "below_limit_exhaust": total["enf_below_limit_exhaust"],
                        "miss_reasons": {k[9:]: v for k, v in sorted(total.items()) if k.startswith("enf_miss:")}},
        "confusion": {k[5:]: v for k, v in sorted(total.items()) if k.startswith("conf:")},
        "level_error_7p5_db": {"n": int(err.size),
                               "mean": round(float(err.mean()), 3) if err.size else None,
                               "max_abs": round(float(np.abs(err).max()), 3) if err.size else None,
                               "within_1db": ratio(int((np.abs(err) <= 1.0).sum()), int(err.size)),
                               # the record's own claim: the truth within +- its margin (U, about 95 %), and how
                               # often the level stated more than the margin over the truth (the unsafe side)
                               "within_margin": ratio(sum(abs(e) <= m for e, m in covered), len(covered)),
                               "over_margin": sum(e > m for e, m in covered),
                               **{k: _spread(v) for k, v in parts.items()}},
        "tonal_false_alarms": {**ratio(fa_runs, fa_frames), "definition": "8 Hz frames in tonal runs, scenes "
                               "without sirens or horns"},
        "analysis_rtf": round(audio_s / t_an, 1) if t_an else None,
    }


def trained_families() -> list[str]:
    """The scene families the current model was fitted on (its ``meta.families``; the training family alone for
    a model without that field, and none for the hand-set rules): a family in this list is not held out."""
    m = classifier.current_model()
    if m is None:
        return []
    return list(m.meta.get("families", ["train"]))


def _spread(values: list[float]) -> dict:
    """Mean and largest magnitude of one part of the level errors (``bench.noise_scoring.level_error_parts``)."""
    a = np.array(values)
    return {"n": int(a.size), "mean": round(float(a.mean()), 3) if a.size else None,
            "max_abs": round(float(np.abs(a).max()), 3) if a.size else None}


def pool(results: list[dict]) -> dict:
    """Sum per-seed results of one family: every ratio (``k``/``n``) gets its pooled value and Wilson interval,
    every other count is added up; level errors keep the pooled n and the worst max_abs."""
    def merge(vals: list):
        first = vals[0]
        if isinstance(first, dict) and {"k", "n", "ci95"} <= first.keys():
            k, n = sum(v["k"] for v in vals), sum(v["n"] for v in vals)
            return {**{kk: vv for kk, vv in first.items() if kk not in ("value", "k", "n", "ci95")}, **ratio(k, n)}
        if isinstance(first, dict):
            keys = {kk for v in vals for kk in v}
            return {kk: merge([v.get(kk, 0) for v in vals]) for kk in sorted(keys)}
        if isinstance(first, bool) or not isinstance(first, (int, float)):
            return first
        if isinstance(first, int) and all(isinstance(v, int) for v in vals):
            return sum(vals)
        return None
    out = merge(results)
    lev = [r["level_error_7p5_db"] for r in results if r["level_error_7p5_db"]["n"]]
    out["level_error_7p5_db"]["max_abs"] = max((v["max_abs"] for v in lev), default=None)
    out["level_error_7p5_db"]["mean"] = (round(sum(v["mean"] * v["n"] for v in lev) / sum(v["n"] for v in lev), 3)
                                         if lev else None)
    for k in ("at_mic", "normalisation"):
        got = [r["level_error_7p5_db"][k] for r in results if r["level_error_7p5_db"].get(k, {}).get("n")]
        n = sum(v["n"] for v in got)
        out["level_error_7p5_db"][k] = {"n": n, "max_abs": max((v["max_abs"] for v in got), default=None),
                                        "mean": round(sum(v["mean"] * v["n"] for v in got) / n, 3) if n else None}
    tp, fp, fn = out["exhaust"]["tp"], out["exhaust"]["fp"], out["exhaust"]["fn"]
    p, r = ratio(tp, tp + fp)["value"], ratio(out["exhaust"]["found"], out["exhaust"]["found"] + fn)["value"]
    out["exhaust"]["f1"] = round(2 * p * r / (p + r), 4) if p and r else None
    out["seed"] = [r_["seed"] for r_ in results]
    out["audio_s"] = round(sum(r_["audio_s"] for r_ in results), 1)
    out["family"], out["module"] = results[0]["family"], results[0]["module"]
    out["full_scale_db"] = results[0]["full_scale_db"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", choices=[*FAMILIES, "both", "all"], default="both")
    ap.add_argument("--scenes", type=int, default=40, help="scenes per family")
    ap.add_argument("--seed", type=int, default=None, help="default: drawn from os.urandom (printed)")
    ap.add_argument("--duration", type=float, default=None, help="scene seconds (default: the family's own)")
    ap.add_argument("--margin-db", type=float, default=2.0)
    ap.add_argument("--full-scale-db", type=float, default=None,
                    help="microphone full scale (SPL of a digital full-scale sine); default: the recommended "
                    f"{RECOMMENDED_FULL_SCALE_DB:g} dB for every family but the training family, drawn per "
                    "scene for the training family")
    ap.add_argument("--runs", type=int, default=1,
                    help="independent seeds (the first is --seed if given, the rest from os.urandom); with more than "
                    "one, 'families' holds the pooled result and 'per_seed' each seed's")
    ap.add_argument("--siren-free-texture", action="store_true",
                    help="training family: textures on, horns and sirens off (the tonal false-alarm measure)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    seeds = [a.seed] if a.seed is not None else []
    while len(seeds) < max(1, a.runs):
        seeds.append(int.from_bytes(os.urandom(4), "little") % 1_000_000)
    fams = {"both": ["train", "independent"], "all": list(FAMILIES)}.get(a.family, [a.family])
    t0 = time.perf_counter()

    def one(seed: int) -> dict:
        return {f: run_family(f, a.scenes, seed, a.duration, a.margin_db, a.verbose,
                              a.full_scale_db if a.full_scale_db is not None or f == "train"
                              else RECOMMENDED_FULL_SCALE_DB, a.siren_free_texture and f == "train") for f in fams}

    per_seed = [one(s_) for s_ in seeds]
    result: dict = {"seed": seeds[0] if len(seeds) == 1 else seeds, "model": classifier.model_version()}
    if len(seeds) == 1:
        result["families"] = per_seed[0]
    else:
        result["families"] = {f: pool([r[f] for r in per_seed]) for f in fams}
        result["per_seed"] = per_seed
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    if a.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"seed {result['seed']}, model {result['model']}")
        for f, r in result["families"].items():
            print(f"[{f}]")
            for k, v in r.items():
                print(f"  {k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
