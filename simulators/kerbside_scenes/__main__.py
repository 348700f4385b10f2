"""python -m simulators.kerbside_scenes --count N --seed S --out DIR [--duration 60] [--full-scale-db 120] [--json]

Writes ``scene-NNN.wav`` (IEEE float32, full-scale units) and ``scene-NNN.json`` (the labels) per scene.
Exit codes: 0 written, 2 bad arguments."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scipy.io import wavfile

from simulators.kerbside_scenes.scene import FAMILY, generate, scene_seeds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.kerbside_scenes", description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--full-scale-db", type=float, default=120.0)
    ap.add_argument("--json", action="store_true", help="print a summary as JSON")
    a = ap.parse_args(argv)
    if not 1 <= a.count <= 10_000:
        ap.error(f"--count {a.count}: need 1 to 10000")
    if a.seed < 0:
        ap.error(f"--seed {a.seed}: need a non-negative integer")
    if not 1.0 <= a.duration <= 3600.0:
        ap.error(f"--duration {a.duration}: need 1 to 3600 s")
    if not 60.0 <= a.full_scale_db <= 180.0:
        ap.error(f"--full-scale-db {a.full_scale_db}: need 60 to 180 dB")
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, seed in enumerate(scene_seeds(a.count, a.seed)):
        scene = generate(seed, duration_s=a.duration, full_scale_db=a.full_scale_db)
        wav, lab = f"scene-{i:03d}.wav", f"scene-{i:03d}.json"
        wavfile.write(a.out / wav, scene.fs, scene.audio)
        (a.out / lab).write_text(json.dumps(scene.labels, indent=1))
        rows.append({"wav": wav, "labels": lab, "seed": seed,
                     "exhausts": sum(s["class"] == "exhaust" for s in scene.sources),
                     "clipped_samples": scene.labels["clipped_samples"]})
    if a.json:
        print(json.dumps({"family": FAMILY, "family_seed": a.seed, "out": str(a.out), "scenes": rows}))
    else:
        print(f"wrote {len(rows)} scenes to {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
