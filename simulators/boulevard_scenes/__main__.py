"""python -m simulators.boulevard_scenes --count N --seed S --out DIR [--duration 60] [--full-scale-db 120] [--json]

Writes scene-NNN.wav (IEEE float32, full-scale units) and scene-NNN.json (the labels) per scene. Exit codes: 0
written, 2 bad arguments."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scipy.io import wavfile

from simulators.boulevard_scenes.scene import FAMILY, generate, scene_seeds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.boulevard_scenes", description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--full-scale-db", type=float, default=120.0)
    ap.add_argument("--json", action="store_true", help="print a summary as JSON")
    a = ap.parse_args(argv)  # exits 2 on a malformed command line
    if not 1 <= a.count <= 100_000:
        ap.error("--count: 1-100000 scenes")
    if not 1.0 <= a.duration <= 3600.0:
        ap.error("--duration: 1-3600 s")
    if not 60.0 <= a.full_scale_db <= 180.0:
        ap.error("--full-scale-db: 60-180 dB")
    a.out.mkdir(parents=True, exist_ok=True)
    done = []
    for i, seed in enumerate(scene_seeds(a.count, a.seed)):
        scene = generate(seed, duration_s=a.duration, full_scale_db=a.full_scale_db)
        wav, lab = f"scene-{i:03d}.wav", f"scene-{i:03d}.json"
        wavfile.write(a.out / wav, scene.fs, scene.audio)
        (a.out / lab).write_text(json.dumps(scene.labels, indent=1))
        done.append({"wav": wav, "labels": lab, "seed": seed, "clipped_samples": scene.labels["clipped_samples"],
                     "exhausts": sum(1 for s in scene.sources if s["class"] == "exhaust")})
    if a.json:
        print(json.dumps({"family": FAMILY, "family_seed": a.seed, "out": str(a.out), "scenes": done}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
