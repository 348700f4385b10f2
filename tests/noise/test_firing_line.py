"""Issue 13, item 2: a fast engine's firing line whose higher orders the vehicle coloured away is not a siren's
tone (``harmonics.firing_line``), and a run starting on an engine's flickering line inherits the frames its tone
was excused just before it (``SuppressionConfig.engine_before_s``); square-ish and soft-clipped siren tones over
the same engine still make runs. Textured siren-free training scenes had 4.1 % of their frames in tonal runs
(docs/benchmarks.md, thirteenth session)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from gateway.noise.harmonics import comb_root, firing_line
from gateway.noise.suppression import SuppressionConfig
from simulators.noise_scene import STREET_MIX, generate
from tests.noise.test_comb import _peaks, odd_tone, pulse_engine
from tests.noise.test_suppression import _run_frames
from tests.noise.test_tones import FS, _phase, at_mic, noise

SIREN_FREE = {**STREET_MIX, "texture": 1.0, "horn": 0.0, "cd_siren": 0.0, "ev_siren": 0.0, "far_siren": 0.0,
              "horn_passby": 0.0}


def coloured_engine(seconds: float, f_a: float, f_b: float, seed: int = 0) -> np.ndarray:
    """A straight pipe firing at f_a -> f_b behind a body that passes its firing line only: a low-pass just
    above it puts order 2 ~17 dB, order 3 ~34 dB under the line (``comb_root`` wants orders 2-4 within 25 dB)."""
    return signal.sosfilt(signal.butter(4, 1.3 * f_b, fs=FS, output="sos"), pulse_engine(seconds, f_a, f_b, seed=seed))


def square_ish(f: np.ndarray) -> np.ndarray:
    """A siren's tone: odd harmonics, and even ones at 0.4 of a square wave's (the training family's most)."""
    ph = _phase(f)
    return odd_tone(f) + 0.4 * (np.sin(2 * ph) / 2 + np.sin(4 * ph) / 4)


def two_tone(seconds: float, lo: float) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    return np.where((t / 1.2) % 1.0 < 0.5, lo, 1.3 * lo)


@pytest.mark.parametrize(("f_a", "f_b"), [(257.0, 268.0), (300.0, 330.0), (450.0, 520.0)])
def test_a_coloured_firing_line_is_excused_and_makes_no_run(f_a, f_b):
    eng = coloured_engine(12.0, f_a, f_b)
    p, k, df = _peaks(eng)
    assert comb_root(p, k, df).mean() < 0.1  # what main relied on does not see it
    assert firing_line(p, k, df).mean() > 0.9
    runs, frames = _run_frames(at_mic(eng, 95.0) + at_mic(noise(12.0), 60.0))
    assert frames == 96 and runs == 0  # main: 38-96 of 96 frames in runs


@pytest.mark.parametrize("tone", ["square", "soft_clipped"])
@pytest.mark.parametrize("lo", [470.0, 650.0])
def test_siren_tones_are_no_firing_line_and_still_make_runs_over_the_engine(tone, lo):
    """Order 3 of a square-ish tone is >= 4.4 dB over order 2, soft clipping adds odd orders only: neither has
    a pulse train's decay, so a two-tone siren 10 dB over the coloured engine still fills its frames with runs."""
    f = two_tone(12.0, lo)
    s = square_ish(f) if tone == "square" else odd_tone(f, drive=3.0)
    p, k, df = _peaks(s)
    assert firing_line(p, k, df).mean() == 0.0
    runs, frames = _run_frames(at_mic(s, 105.0) + at_mic(coloured_engine(12.0, 257.0, 268.0), 95.0)
                               + at_mic(noise(12.0), 60.0))
    assert runs >= 0.9 * frames


@pytest.mark.parametrize(("seed", "scene", "main_runs"), [(1501, 6, 32), (1501, 10, 45), (1502, 7, 81)])
def test_fast_engines_on_textured_siren_free_training_scenes_make_no_run(seed, scene, main_runs):
    """The three scenes behind the 4.1 % (docs/benchmarks.md): a V10 motorcycle firing at 307-492 Hz, a V8 at
    446-894 Hz (odd orders the stronger: its line flickers between excused and not, and only the frames excused
    just before the run count it out), a five-cylinder at 257-268 Hz (orders 3-4 under -25 dB)."""
    sc = generate(seed * 100_003 + scene, duration_s=20, mix=SIREN_FREE, full_scale_db=None)
    assert not any(s.get("class") in ("siren", "horn") for s in sc.sources)
    runs, frames = _run_frames(sc.audio)
    assert frames == 160 and runs <= 0.01 * frames  # main: main_runs
    if scene == 10:  # the V8: without the frames excused before the run, it counts (16 frames since a held
        #              run no longer follows an engine order, 45 before: still 5x the 1 % goal)
        assert _run_frames(sc.audio, SuppressionConfig(engine_before_s=0.0))[0] > 0.05 * frames


def test_the_bench_measures_textured_siren_free_scenes():
    """``bench.noise_accuracy --siren-free-texture`` (docs/benchmarks.md, thirteenth session): every scene of the
    training family is siren-free and textured, so every frame counts in ``tonal_false_alarms``."""
    from bench.noise_accuracy import run_family

    r = run_family("train", 1, 1502, 14.0, 2.0, siren_free_texture=True)
    assert r["tonal_false_alarms"]["n"] == 14 * 8
