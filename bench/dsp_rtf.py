"""Real-time factor of the full noise pipeline (levels, spectrogram, detector, events with classification,
LCpeak, spectrum and signed evidence) at 48 kHz on one core.

    python -m bench.dsp_rtf --json

Pins itself to one CPU (sched_setaffinity) and one BLAS thread. The input is a busy simulated street
(``--seed``) so that events are included in the cost; blocks of 100 ms as a microphone would deliver.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from gateway.noise.detector import DetectorConfig  # noqa: E402
from gateway.noise.dsp import LevelMeter  # noqa: E402
from gateway.noise.pipeline import AnalyzerConfig, NoiseAnalyzer  # noqa: E402
from simulators.noise_scene import generate  # noqa: E402


def run(audio: np.ndarray, fs: int, distance: float, block: int, key) -> tuple[float, int]:
    an = NoiseAnalyzer(AnalyzerConfig(detector=DetectorConfig(distance_m=distance)), key=key)
    n_events = 0
    t = time.perf_counter()
    for i in range(0, audio.size, block):
        n_events += len(an.feed(audio[i: i + block]).events)
    n_events += len(an.close().events)
    return time.perf_counter() - t, n_events


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--block-ms", type=float, default=100.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=0, help="CPU to pin to (-1: do not pin)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {a.cpu})
    scene = generate(a.seed, duration_s=a.duration, mix={"exhaust": 4, "legal": 4, "horn": 1.0, "ev_siren": 1.0})
    fs = scene.fs
    block = int(fs * a.block_ms / 1000)
    key = Ed25519PrivateKey.generate()
    run(scene.audio[: fs * 5], fs, scene.labels["distance_m"], block, key)  # warm-up
    best, events = float("inf"), 0
    for _ in range(a.repeat):
        dt, events = run(scene.audio, fs, scene.labels["distance_m"], block, key)
        best = min(best, dt)
    meter = LevelMeter()
    lv_best = float("inf")
    for _ in range(a.repeat):
        t = time.perf_counter()
        for i in range(0, scene.audio.size, block):
            meter.feed(scene.audio[i: i + block])
        lv_best = min(lv_best, time.perf_counter() - t)
    audio_s = scene.audio.size / fs
    result = {"realtime_factor": round(audio_s / best, 1), "levels_only_realtime_factor": round(audio_s / lv_best, 1),
              "audio_s": audio_s, "events": events, "fs": fs, "block_ms": a.block_ms,
              "pinned_cpu": a.cpu if a.cpu >= 0 else None}
    print(json.dumps(result, indent=1) if a.json else result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
