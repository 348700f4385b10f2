"""python -m simulators.holdout_scenes --count N --seed S --out DIR [--duration 60] [--full-scale-db 120] [--json]

Writes scene-NNN.wav (IEEE float32, full-scale units) and scene-NNN.json (labels) per scene. Exit codes: 0 written,
2 bad arguments."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scipy.io import wavfile

from . import FAMILY, scene_seeds, scenes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.holdout_scenes",
                                 description="Write held-out street scenes (wav + json labels).")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--full-scale-db", type=float, default=120.0)
    ap.add_argument("--json", action="store_true", help="print a JSON summary")
    a = ap.parse_args(argv)
    if a.count < 1:
        ap.error("--count must be at least 1")
    if not a.duration > 0:
        ap.error("--duration must be positive")
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, sc in enumerate(scenes(a.count, a.seed, duration_s=a.duration, full_scale_db=a.full_scale_db)):
        wav, lab = f"scene-{i:03d}.wav", f"scene-{i:03d}.json"
        wavfile.write(a.out / wav, sc.fs, sc.audio)  # float32 samples: IEEE float WAV
        (a.out / lab).write_text(json.dumps(sc.labels, indent=1))
        rows.append({"wav": wav, "labels": lab, "seed": sc.labels["seed"],
                     "exhausts": sum(1 for s in sc.sources if s["class"] == "exhaust"),
                     "clipped_samples": sc.labels["clipped_samples"]})
        if not a.json:
            print(f"{a.out / wav}: seed {sc.labels['seed']}, {rows[-1]['exhausts']} exhausts")
    if a.json:
        print(json.dumps({"family": FAMILY, "family_seed": a.seed, "out": str(a.out), "scenes": rows}))
    assert [r["seed"] for r in rows] == scene_seeds(a.count, a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
