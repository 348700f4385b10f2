"""Where an event's maximum lies at its edge (``edge_peak``, never a case) and where it does not
(``gateway.noise.chains.edge_peak``; issue 13, twenty-fourth session).

``edge_peak`` keeps a piece that begins on someone else's sound (a horn's tail after a split) from becoming a
case: its maximum lies at its first frames. Two kinds of piece tripped it without a neighbour to blame:

- a piece that *opened from under the threshold* with its maximum 0.1-0.3 s later: a straight pipe revved from
  quiet makes its own maximum at once (on 217 cached independent scenes, a 103.7 dB pass-by 0.15 s after its
  event opened);
- a pass-by that *absorbed its approach*: its measured piece began at the dip of a gear change, but the record
  covers the approach too, and its maximum lies well inside it (a 114 dB car 0.25 s after such a dip).

The level of each is the source's own; the classifier, the other flags and the level still decide the case."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from gateway.noise.chains import edge_peak
from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from tests.noise.over_exhaust import exhaust_scene

FS = 48_000


def piece(start: int, peak: int, end: int, lafmax: float = 100.0) -> SimpleNamespace:
    """A detector piece as ``gateway.noise.chains`` reads it (frames)."""
    return SimpleNamespace(start=start, peak=peak, end=end, lafmax=lafmax)


@pytest.mark.parametrize(("p", "span", "opened", "edge"), [
    (piece(10, 11, 40), (10, 40), False, True),  # begins on a neighbour's sound: its maximum at the start
    (piece(10, 11, 40), (10, 40), True, False),  # opened from quiet: the source made its own maximum
    (piece(10, 11, 40), (2, 40), False, False),  # absorbed its approach: the maximum is inside the pass-by
    (piece(10, 38, 40), (10, 40), True, True),  # a maximum at the end is an edge, however the piece opened
    (piece(10, 38, 40), (10, 55), False, False),  # ... unless the pass-by's departure follows it
    (piece(10, 20, 40), (10, 40), False, False),  # an interior maximum
])
def test_edge_peak_judges_the_pass_by_and_how_the_piece_opened(p, span, opened, edge):
    assert edge_peak(p, span, opened) is edge


def _rev(seed: int = 2) -> tuple[np.ndarray, AnalyzerConfig, float]:
    """A training-family exhaust pass-by, silent until 0.2 s before its maximum and then 8 dB/s quieter: a
    straight pipe revved from quiet (its event opens 0.25 s before its maximum)."""
    scene, _ = exhaust_scene(seed)
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]))
    x = scene.audio.astype(np.float64)
    _, ev = analyze_array(scene.audio, cfg)
    pk = max(ev, key=lambda e: e.levels.lafmax).peak
    t = np.arange(x.size) / FS
    on = pk - 0.2
    g = np.where(t < on, 10 ** (-40 / 20), 10 ** (-8 * np.maximum(t - on, 0.0) / 20))
    i, r = int(on * FS), int(0.01 * FS)
    g[i - r: i] = np.linspace(10 ** (-40 / 20), 1.0, r)
    return (x * g).astype(np.float32), cfg, on


def _loud(events) -> list:
    return [e for e in events if e.levels.lafmax_7p5 >= 85.0]


def test_a_straight_pipe_revved_from_quiet_has_no_edge_peak():
    audio, cfg, on = _rev()
    (rec,) = _loud(analyze_array(audio, cfg)[1])
    assert rec.peak - rec.start < 0.3 and rec.start >= on - 0.1  # its maximum within 0.3 s of its opening
    assert rec.klass == "exhaust" and "edge_peak" not in rec.flags
