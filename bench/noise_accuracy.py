"""Accuracy of the noise pipeline on simulated street scenes with ground truth.

    python -m bench.noise_accuracy --scenes 200 --seed S --json

Scene i uses simulator seed ``S * 100_003 + i``. Definitions:

- a *detection* is an event the pipeline classed ``exhaust``, not suppressed, at or above the candidate
  threshold (85 dB at 7.5 m);
- a *true loud exhaust* is a labelled exhaust car or motorcycle whose nominal LAFmax at 7.5 m is at least
  ``candidate + margin`` and whose pass-by (peak +- 2 s) overlaps no siren; exhaust vehicles within
  ``margin`` of the threshold, or passing while a siren sounds, are *ambiguous*: they count neither as
  misses nor as false detections;
- a detection matches a label when the label's peak time lies in [event start - 1 s, event end + 1 s].

precision = matched detections / all detections (detections matched only to ambiguous labels are left
out); recall = true loud exhausts matched by a detection / all true loud exhausts;
siren_enforcement_cases = siren-caused enforcement cases: a labelled siren's own level at the microphone
(from the simulator's per-siren 10 Hz LAF trace) came within 10 dB of the event's LAFmax during the event;
siren_overlap_enforcement_cases (stricter) = enforcement cases whose event overlaps any siren sound at all.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

from gateway.noise.detector import DetectorConfig  # noqa: E402
from gateway.noise.pipeline import AnalyzerConfig, analyze_array  # noqa: E402
from simulators.noise_scene import generate  # noqa: E402

CAUSE_DB = 10.0  # a siren within this of an event's LAFmax (its own level, alone) contributed to it


def siren_level_during(src: dict, a: float, b: float) -> float:
    """The labelled siren's own maximum LAF at the microphone during [a, b] (-inf if silent then)."""
    trace, t0 = src.get("laf_trace") or [], src.get("laf_trace_t0", src["t_start"])
    i0, i1 = max(0, int((a - t0) * 10)), max(0, int(math.ceil((b - t0) * 10)))
    part = trace[i0:i1]
    return max(part) if part else -math.inf


def score_scene(labels: dict, events: list, *, candidate_db: float, enforcement_db: float, uncertainty_db: float,
                margin_db: float) -> dict:
    sources = labels["sources"]
    sirens = [(s["t_start"], s["t_end"]) for s in sources if s.get("class") == "siren"]
    exh = [s for s in sources if s.get("class") == "exhaust"]

    def during_siren(a: float, b: float) -> bool:
        return any(x < b and a < y for x, y in sirens)

    truth, ambiguous = [], []
    for s in exh:
        lv = s["lafmax_7p5_db"]
        if abs(lv - candidate_db) < margin_db or during_siren(s["t_peak"] - 2, s["t_peak"] + 2):
            ambiguous.append(s)
        elif lv >= candidate_db + margin_db:
            truth.append(s)
    enf_line = enforcement_db + uncertainty_db
    enf_truth = [s for s in truth if s["lafmax_7p5_db"] >= enf_line + margin_db]

    def matches(e, s) -> bool:
        return e.start - 1.0 <= s["t_peak"] <= e.end + 1.0

    out = Counter()
    dets = [e for e in events if e.klass == "exhaust" and not e.suppressed and e.candidate]
    for e in dets:
        if any(matches(e, s) for s in truth):
            out["tp"] += 1
        elif any(matches(e, s) for s in ambiguous):
            out["ignored"] += 1
        else:
            out["fp"] += 1
    for s in truth:
        if not any(matches(e, s) for e in dets):
            out["fn"] += 1
    enf = [e for e in events if e.enforcement]
    siren_srcs = [s for s in sources if s.get("class") == "siren"]
    for e in enf:
        if during_siren(e.start, e.end):
            out["siren_overlap_enforcement"] += 1
        if any(siren_level_during(s, e.start, e.end) >= e.levels.lafmax - CAUSE_DB for s in siren_srcs):
            out["siren_enforcement"] += 1
        if any(matches(e, s) for s in enf_truth):
            out["enf_tp"] += 1
        elif any(matches(e, s) for s in exh):
            out["enf_other_exhaust"] += 1  # a real exhaust below the enforcement line (+margin), or ambiguous
        else:
            out["enf_fp"] += 1
    for s in enf_truth:
        if not any(matches(e, s) for e in enf):
            out["enf_fn"] += 1
    # confusion: labelled loud source kind -> class of the event that covers its peak
    for s in sources:
        if "t_peak" not in s or s["kind"] == "legal_car":
            continue
        cover = [e for e in events if matches(e, s)]
        out[f"conf:{s['class']}->{cover[0].klass if cover else 'none'}"] += 1
    return dict(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--margin-db", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    det = DetectorConfig()
    total: Counter[str] = Counter()
    t0 = time.perf_counter()
    t_an = 0.0
    audio_s = 0.0
    for i in range(a.scenes):
        seed = a.seed * 100_003 + i
        scene = generate(seed, duration_s=a.duration)
        cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]))
        t1 = time.perf_counter()
        _, events = analyze_array(scene.audio, cfg, zone_intervals=scene.labels["zone_siren_active"])
        t_an += time.perf_counter() - t1
        audio_s += scene.audio.size / scene.fs
        sc = score_scene(scene.labels, events, candidate_db=det.candidate_db, enforcement_db=det.enforcement_db,
                         uncertainty_db=det.uncertainty_db, margin_db=a.margin_db)
        if a.verbose and (sc.get("fp") or sc.get("fn") or sc.get("siren_enforcement")):
            print(f"seed {seed}: {sc}", file=sys.stderr)
        total.update(sc)
    tp, fp, fn = total["tp"], total["fp"], total["fn"]
    etp, efp, efn = total["enf_tp"], total["enf_fp"], total["enf_fn"]
    result = {
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "siren_enforcement_cases": total["siren_enforcement"],
        "siren_overlap_enforcement_cases": total["siren_overlap_enforcement"],
        "tp": tp, "fp": fp, "fn": fn, "ignored_ambiguous": total["ignored"],
        "enforcement": {"precision": round(etp / (etp + efp), 4) if etp + efp else None,
                        "recall": round(etp / (etp + efn), 4) if etp + efn else None,
                        "tp": etp, "fp": efp, "fn": efn, "below_line_exhaust": total["enf_other_exhaust"]},
        "confusion": {k[5:]: v for k, v in sorted(total.items()) if k.startswith("conf:")},
        "scenes": a.scenes, "seed": a.seed, "audio_s": round(audio_s, 1),
        "analysis_rtf": round(audio_s / t_an, 1) if t_an else None,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    if a.json:
        print(json.dumps(result, indent=1))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
