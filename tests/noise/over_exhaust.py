"""What the tests of sounds over a loud exhaust share (``test_horn_inside``, ``test_siren_inside``): a lone
exhaust pass-by of the training family, the pipeline run on its audio, and the events covering a moment."""

from __future__ import annotations

import numpy as np

from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from simulators.noise_scene import generate

NONE = {"exhaust": 0, "legal": 0, "horn": 0.0, "cd_siren": 0.0, "ev_siren": 0.0, "wind": 0.0, "rain": 0.0}


def analyze(audio: np.ndarray, scene):
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]))
    _, events = analyze_array(audio, cfg)
    return events


def exhaust_scene(seed: int):
    scene = generate(seed, duration_s=24.0, mix={**NONE, "exhaust": 1})
    src = next(s for s in scene.sources if s["class"] == "exhaust")
    return scene, src


def covering(events, t: float):
    return [e for e in events if e.start - 0.5 <= t <= e.end + 0.5]
