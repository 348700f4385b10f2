"""Independent street-scene family: an evaluation oracle for the loud-exhaust classifier.

Written from a spec (``docs/noise-scenes.md``, "independent family") without reading the classifier, the
detector or the other generator's synthesis code; only the ``Scene`` type and its label field names are shared
with ``simulators.noise_scene``. Its modelling choices are deliberately different:

- background is recorded-style texture: 1/f-like tyre/road roar with random tilt, low-frequency boost and
  spectral ripple, a *superposition of many distant pass-bys*, idling engines, wind buffeting with gusts, rain
  as a Poisson stream of drop impacts, and intermittent events (footsteps, door slams, birds, babble);
- engines are pulse trains through a resonant pipe (not harmonic stacks), with rpm stories, gear changes and
  overrun crackle; motorcycles fire as singles or twins with their crank angles;
- every point source is propagated by its own model (``acoustics``): retarded time solved in closed form,
  fractional-delay resampling, 1/r, ISO 9613-1 air absorption, optional ground reflection;
- labels come from the source model: each loud source is scaled so that its own isolated rendering at 7.5 m
  (same microphone height and ground) has the drawn LAFmax, measured with a frequency-domain A-weighting.

Public API: ``generate(seed, duration_s=60.0, fs=48000, **overrides) -> Scene``, ``scenes(count, seed)``,
``RANGES`` (the declared random ranges), ``QUIET`` / ``quiet(**adds)`` (overrides that leave only what the caller adds back).
"""

from simulators.street_scenes.ranges import QUIET, RANGES, quiet
from simulators.street_scenes.scene import generate, scene_seeds, scenes

__all__ = ["QUIET", "RANGES", "generate", "quiet", "scene_seeds", "scenes"]
