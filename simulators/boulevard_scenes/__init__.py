"""The boulevard street-scene family (issue 13): a fifth generator, written without reading the other four, with
different modelling choices (a multi-lane tree-lined avenue, spectral-modelling engines with Doppler applied
analytically to their partials, tree-canopy scattering, statistical background textures, a microphone on a lamp
post). docs/noise-scenes.md, "Boulevard family"."""

from simulators.boulevard_scenes.ranges import RANGES
from simulators.boulevard_scenes.scene import FAMILY, QUIET, generate, quiet, scene_seeds, scenes

__all__ = ["FAMILY", "QUIET", "RANGES", "generate", "quiet", "scene_seeds", "scenes"]
