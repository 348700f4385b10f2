"""python -m simulators.junction_scenes --count N --seed S --out DIR [--duration 60] [--full-scale-db 120] [--json]:
writes scene-NNN.wav (IEEE float32, full-scale units) and scene-NNN.json (labels). Exit 0, or 2 on bad arguments."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from simulators.junction_scenes.scene import FAMILY, generate, scene_seeds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.junction_scenes", description=__doc__)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--full-scale-db", type=float, default=120.0)
    ap.add_argument("--json", action="store_true")
    try:
        a = ap.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if not 1 <= a.count <= 100000:
        print("--count: expected 1..100000", file=sys.stderr)
        return 2
    if a.seed < 0:
        print("--seed: expected a non-negative integer", file=sys.stderr)
        return 2
    if not 1.0 <= a.duration <= 3600.0 or not 60.0 <= a.full_scale_db <= 180.0:
        print("--duration: 1..3600 s, --full-scale-db: 60..180 dB", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, s in enumerate(scene_seeds(a.count, a.seed)):
        scene = generate(s, duration_s=a.duration, full_scale_db=a.full_scale_db)
        wav, lab = f"scene-{i:03d}.wav", f"scene-{i:03d}.json"
        wavfile.write(out / wav, scene.fs, scene.audio.astype(np.float32))
        (out / lab).write_text(json.dumps(scene.labels))
        rows.append({"wav": wav, "labels": lab, "seed": s, "clipped_samples": scene.labels["clipped_samples"],
                     "exhausts": sum(1 for x in scene.sources if x["class"] == "exhaust")})
    if a.json:
        print(json.dumps({"family": FAMILY, "family_seed": a.seed, "out": str(out), "scenes": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
