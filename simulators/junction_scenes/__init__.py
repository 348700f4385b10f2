"""The junction street-scene family (issue 13): a signalised junction approach seen from a microphone pole at the
kerb, written without reading the other families' synthesis: traffic-light cycles and queues, engines by modal
(resonator-bank) synthesis, block-wise Doppler with ISO 9613-1 air absorption, a Delany-Bazley ground and Maekawa
screening. docs/noise-scenes.md, "Junction family"."""

from simulators.junction_scenes.ranges import RANGES
from simulators.junction_scenes.scene import FAMILY, QUIET, generate, quiet, scene_seeds, scenes

__all__ = ["FAMILY", "QUIET", "RANGES", "generate", "quiet", "scene_seeds", "scenes"]
