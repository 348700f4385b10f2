"""Issue 13, goal "zero enforcement cases caused by sirens, yelps, horns or legal cars": fast-sweeping sirens
inside a long exhaust event.

The training family's one remaining siren-caused case (``bench.noise_accuracy --family train --seed 596532``,
scene 2) was a yelp (679-1122 Hz, 0.39 s period, its third harmonic the strongest) that sounded 5 s before a
101 dB exhaust's maximum, inside the exhaust's 15 s event. The local tonal detector found it in no frame that
counted: in the 85 ms spectrum the sweep is smeared over tens of bins (not narrow), and in the 21 ms spectrum
one frame in two was excused as an engine order, because ``series_member`` took the smeared peak's own skirt,
3 bins out, for the neighbouring orders of a ~150 Hz series (the far valley 1.5 orders out was enough). With
one excused frame per tonal frame, ``engine_ratio`` never let the run count, so no ``siren_nearby``.

These tests build that situation from a real exhaust pass-by (``simulators.noise_scene``, no siren of its own)
and a synthetic yelp or hi-lo tone whose harmonic envelope peaks at the third harmonic, passing 5.5 s before the
exhaust's maximum at 5.5 dB under its LAFmax at the microphone (as in the training scene): the siren is part
of the event's loud part, the exhaust sets the level a case would state. On the synthetic scenes the pass-by
detector may cut the siren's pass-by off (it then becomes a classified siren, which suppresses), so what they
pin is the detector: most of the siren's loud part must be in tonal runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from gateway.noise.detector import DetectorConfig
from gateway.noise.dsp import MeterConfig
from gateway.noise.harmonics import series_member
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from gateway.noise.spectrum import SPEC_HZ, Spectrogram
from gateway.noise.suppression import SirenSuppressor
from simulators.noise_scene import STREET_MIX, generate

FS = 48_000
FULL_SCALE = 120.0
ALONE = {"exhaust": 1, "legal": 0, "horn": 0.0, "cd_siren": 0.0, "ev_siren": 0.0, "wind": 0.0, "rain": 0.0}
BELL3 = np.array([0.25, 0.6, 1.0, 0.6, 0.35, 0.2])  # harmonic amplitudes 1-6: the third is the strongest


def siren(n: int, t_pass: float, level_db: float, kind: str, lo: float = 680.0, hi: float = 1120.0,
          period: float = 0.39, tau: float = 1.65) -> np.ndarray:
    """A yelp (triangular sweep lo-hi-lo every ``period``) or a hi-lo (steady lo and hi alternating, each for
    0.6 s) with the harmonic envelope ``BELL3``, passing at ``t_pass`` at ``level_db`` (mean square of the
    tone; A-weighting is within 1 dB of 0 at 2-3.4 kHz): -7 dB 3.3 s either side, -14 dB 8 s either side, as
    the emergency vehicle of the training scene."""
    ts = np.arange(n) / FS
    if kind == "yelp":
        frac = (ts / period) % 1.0
        f = lo + (hi - lo) * np.where(frac < 0.5, 2 * frac, 2 - 2 * frac)
    else:
        f = np.where((ts / 1.2) % 1.0 < 0.5, lo, hi)
    ph = 2 * np.pi * np.cumsum(f) / FS
    y = sum(a * np.sin((k + 1) * ph) for k, a in enumerate(BELL3))
    y = y / np.sqrt(np.mean(y**2)) / np.sqrt(1 + ((ts - t_pass) / tau) ** 2)
    return y * 10 ** ((level_db - FULL_SCALE) / 20) * np.sqrt(2)  # a full-scale sine (ms 0.5) is FULL_SCALE


def _passby(seed: int):
    scene = generate(seed, duration_s=24.0, mix=ALONE)
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]))
    (ex,) = [s for s in scene.labels["sources"] if s["class"] == "exhaust"]
    return scene, cfg, ex


def _run_frames(x: np.ndarray) -> int:
    """8 Hz frames the local tonal detector puts in tonal runs (``bench.noise_accuracy``'s false-alarm count)."""
    spec = Spectrogram(FS, short_nfft=1024)
    s = SirenSuppressor(spec.freqs, SPEC_HZ)
    s.feed(*spec.feed(x))
    return s.run_frames


def test_training_scene_yelp_inside_a_long_exhaust_event_makes_no_case():
    """The scene itself (``bench.noise_accuracy --family train --scenes 8 --seed 596532``, scene 2)."""
    scene = generate(596532 * 100_003 + 2, mix=STREET_MIX, full_scale_db=None)
    lab = scene.labels
    cfg = AnalyzerConfig(meter=MeterConfig(fs=scene.fs, full_scale_db=float(lab["full_scale_db"])),
                         detector=DetectorConfig(distance_m=float(lab["distance_m"])))
    _, events = analyze_array(scene.audio, cfg, zone_intervals=lab["zone_siren_active"])
    (yelp,) = [s for s in lab["sources"] if s["kind"] == "ev_siren_yelp"]
    (ev,) = [e for e in events if e.start <= yelp["t_peak"] <= e.end]
    assert ev.klass == "exhaust" and ev.scores["exhaust"] >= 0.8  # the model does not see the yelp
    assert not ev.enforcement and (ev.suppressed or "siren_nearby" in ev.flags)


@pytest.mark.parametrize("seed", [22, 23, 24, 35])
def test_a_loud_exhaust_alone_still_makes_its_case(seed):
    scene, cfg, ex = _passby(seed)
    _, events = analyze_array(scene.audio, cfg)
    cases = [e for e in events if e.enforcement]
    assert len(cases) == 1 and cases[0].start <= ex["t_peak"] <= cases[0].end
    assert not cases[0].flags and not cases[0].suppressed
    assert _run_frames(scene.audio) == 0  # its engine orders are no tonal run


@pytest.mark.parametrize("kind", ["yelp", "hilo"])
@pytest.mark.parametrize("seed", [22, 23, 24, 35])
def test_a_fast_sweeping_siren_inside_the_exhaust_event_makes_no_case(seed, kind):
    scene, cfg, ex = _passby(seed)
    _, alone = analyze_array(scene.audio, cfg)
    (case,) = [e for e in alone if e.enforcement]
    tp = ex["t_peak"]
    y = siren(scene.audio.size, tp - 5.5, case.levels.lafmax - 5.5, kind)  # 5.5 s before, 5.5 dB under
    _, events = analyze_array(scene.audio + y.astype(np.float32), cfg)
    over = [e for e in events if e.start <= tp <= e.end]
    assert len(over) == 1  # (the detector may cut the siren's own pass-by off as an event of its own)
    assert not any(e.enforcement for e in events)
    assert over[0].suppressed or "siren_nearby" in over[0].flags
    # the local detector itself hears the siren: the ~10 s (80 frames) within 10 dB of its loudest are in
    # tonal runs (before the fix, 8-12 frames of a yelp were: one short-frame peak in two was "an engine order")
    assert _run_frames(scene.audio + y.astype(np.float32)) >= 60


def test_a_smeared_peak_is_not_its_own_neighbouring_orders():
    """``series_member(resolved=True)``: a peak spread over a few 47 Hz bins by a sweep (at 2.3 kHz, the third
    harmonic of a yelp) has no dip between it and the bins 3 out, so they are no neighbouring orders; the
    orders of a ~190-375 Hz engine comb, 4-8 bins apart, still are."""
    k = np.arange(513)
    for width in (1.0, 1.6, 2.5):  # bins (Gaussian sigma)
        smeared = np.exp(-0.5 * ((k - 50) / width) ** 2) + 1e-6
        assert series_member(smeared[None], np.array([50]), 46.875)[0]  # without: the skirt passes as orders
        assert not series_member(smeared[None], np.array([50]), 46.875, resolved=True)[0]
    for spacing in (4, 5, 8):
        comb = sum(np.exp(-0.5 * ((k - h * spacing) / 0.8) ** 2) for h in range(1, 30)) + 1e-6
        assert series_member(comb[None], np.array([10 * spacing]), 46.875, resolved=True)[0]
