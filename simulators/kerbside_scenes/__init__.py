"""The kerbside street-scene family (issue 13): a fourth generator, written without reading the other three,
with different modelling choices (street canyon, MEMS microphone, pulse-driven engines through a waveguide pipe,
Doppler by a time-varying fractional delay, real-street distractors). docs/noise-scenes.md, "Kerbside family"."""

from simulators.kerbside_scenes.ranges import RANGES
from simulators.kerbside_scenes.scene import FAMILY, QUIET, generate, quiet, scene_seeds, scenes

__all__ = ["FAMILY", "QUIET", "RANGES", "generate", "quiet", "scene_seeds", "scenes"]
