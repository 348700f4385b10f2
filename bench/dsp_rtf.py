"""Real-time factor of the full noise pipeline (levels, spectrogram, detector, events with classification,
LCpeak, spectrum and signed evidence) at 48 kHz on one core.

    python -m bench.dsp_rtf --json

Pins itself to one CPU (sched_setaffinity) and one BLAS thread. The input is a busy simulated street
(``--seed``) so that events are included in the cost; blocks of 100 ms as a microphone would deliver.

``realtime_factor`` is audio seconds over the best wall-clock time of ``--repeat`` runs (the goal's figure).
``cpu_realtime_factor`` is the same over the best CPU time of those runs: on a shared machine it says what
the code costs while the wall clock also counts other processes. ``--stages`` adds ``stages_cpu_ms``, the CPU
milliseconds of each part of the pipeline in one more (untimed) run; parts nest: ``evidence`` holds
``features``, ``lcpeak``, ``spectrum`` and ``sign``, and ``tonal`` (spectrogram + siren detector) holds
``suppressor``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from gateway.noise.detector import DetectorConfig  # noqa: E402
from gateway.noise.dsp import LevelMeter  # noqa: E402
from gateway.noise.pipeline import AnalyzerConfig, NoiseAnalyzer  # noqa: E402
from simulators.noise_scene import generate  # noqa: E402


def run(audio: np.ndarray, fs: int, distance: float, block: int, key, *, cpu: list[float] | None = None,
        stages: dict[str, float] | None = None) -> tuple[float, int]:
    """Wall-clock seconds and events of one pass; ``cpu`` gets its CPU seconds, ``stages`` those of its parts."""
    an = NoiseAnalyzer(AnalyzerConfig(detector=DetectorConfig(distance_m=distance)), key=key)
    n_events = 0
    with _timed_parts(an, stages) if stages is not None else contextlib.nullcontext():
        c = time.process_time()
        t = time.perf_counter()
        for i in range(0, audio.size, block):
            n_events += len(an.feed(audio[i: i + block]).events)
        n_events += len(an.close().events)
        dt = time.perf_counter() - t
    if cpu is not None:
        cpu.append(time.process_time() - c)
    return dt, n_events


@contextlib.contextmanager
def _timed_parts(an: NoiseAnalyzer, acc: dict[str, float]):
    """Sum the CPU seconds of the analyzer's parts into ``acc`` (instance methods, and the module functions the
    pipeline calls, which are put back afterwards)."""
    from gateway.noise import classifier, pipeline

    def timed(f, label):
        def g(*a, **k):
            t = time.process_time()
            try:
                return f(*a, **k)
            finally:
                acc[label] = acc.get(label, 0.0) + time.process_time() - t
        return g

    for obj, name, label in ((an.meter, "feed", "meter"), (an.detector, "feed", "detector"),
                             (an, "_tonal_catch_up", "tonal"), (an.suppressor, "feed", "suppressor"),
                             (an._seconds, "feed", "seconds"), (an, "_evidence", "evidence")):
        setattr(obj, name, timed(getattr(obj, name), label))
    saved = [(classifier, "features", "features"), (pipeline, "sign", "sign"), (pipeline, "peak_c", "lcpeak"),
             (pipeline, "spectrum_at", "spectrum")]
    originals = [getattr(m, n) for m, n, _ in saved]
    try:
        for (m, n, label), f in zip(saved, originals, strict=True):
            setattr(m, n, timed(f, label))
        yield
    finally:
        for (m, n, _), f in zip(saved, originals, strict=True):
            setattr(m, n, f)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--block-ms", type=float, default=100.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=0, help="CPU to pin to (-1: do not pin)")
    ap.add_argument("--stages", action="store_true", help="add the CPU ms of each part of the pipeline (one more run)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {a.cpu})
    scene = generate(a.seed, duration_s=a.duration, mix={"exhaust": 4, "legal": 4, "horn": 1.0, "ev_siren": 1.0})
    fs = scene.fs
    block = int(fs * a.block_ms / 1000)
    key = Ed25519PrivateKey.generate()
    run(scene.audio[: fs * 5], fs, scene.labels["distance_m"], block, key)  # warm-up
    best, events, cpu = float("inf"), 0, []
    for _ in range(a.repeat):
        dt, events = run(scene.audio, fs, scene.labels["distance_m"], block, key, cpu=cpu)
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
              "pinned_cpu": a.cpu if a.cpu >= 0 else None,
              "cpu_realtime_factor": round(audio_s / max(min(cpu), 1e-9), 1), "load_avg": _load()}
    if a.stages:
        parts: dict[str, float] = {}
        run(scene.audio, fs, scene.labels["distance_m"], block, key, stages=parts, cpu=cpu)
        result["stages_cpu_ms"] = {k: round(v * 1000, 2) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])}
        result["stages_cpu_ms"]["total"] = round(cpu[-1] * 1000, 2)
    print(json.dumps(result, indent=1) if a.json else result)
    return 0


def _load() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages while it ran (the machine is shared: say how busy it was)."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


if __name__ == "__main__":
    raise SystemExit(main())
