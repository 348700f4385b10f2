"""Write independent street scenes to disk: ``python -m simulators.street_scenes --count N --seed S --out DIR``.

Each scene becomes ``scene-NNN.wav`` (IEEE float32, mono, full-scale units: a full-scale sine is
``--full-scale-db`` dB SPL) and ``scene-NNN.json`` (its labels). Exit codes: 0 written, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scipy.io import wavfile

from simulators.street_scenes.scene import FULL_SCALE_DB, generate, scene_seeds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulators.street_scenes", description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1, help="number of scenes")
    ap.add_argument("--seed", type=int, required=True, help="family seed (scene seeds derive from it)")
    ap.add_argument("--out", type=Path, required=True, help="output folder (created)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per scene")
    ap.add_argument("--full-scale-db", type=float, default=FULL_SCALE_DB, help="SPL of a digital full-scale sine")
    ap.add_argument("--json", action="store_true", help="print a JSON summary instead of lines")
    a = ap.parse_args(argv)
    if a.count < 1 or a.duration < 4.0 or not 60.0 <= a.full_scale_db <= 180.0:
        ap.error("need --count >= 1, --duration >= 4 and --full-scale-db within 60..180")
    a.out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, seed in enumerate(scene_seeds(a.count, a.seed)):
        scene = generate(seed, duration_s=a.duration, full_scale_db=a.full_scale_db)
        stem = a.out / f"scene-{i:03d}"
        wavfile.write(stem.with_suffix(".wav"), scene.fs, scene.audio)
        stem.with_suffix(".json").write_text(json.dumps(scene.labels, indent=1))
        n_exh = sum(1 for s in scene.sources if s.get("class") == "exhaust")
        written.append({"wav": str(stem.with_suffix(".wav")), "labels": str(stem.with_suffix(".json")),
                        "seed": seed, "exhausts": n_exh, "clipped_samples": scene.labels["clipped_samples"]})
        if not a.json:
            print(f"{stem.with_suffix('.wav')}  seed {seed}  exhausts {n_exh}", flush=True)
    if a.json:
        print(json.dumps({"family": "independent", "family_seed": a.seed, "scenes": written}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
