"""The loud frames every spectral feature is taken from are chosen by A-weighted energy (issue 13, eighteenth
session): wind below 150 Hz, which the A-weighting all but removes from the level, must not choose them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import sosfilt

from gateway.noise import rules
from gateway.noise.dsp import LevelMeter, MeterConfig
from gateway.noise.features import features
from gateway.noise.weighting import a_weighting_sos
from simulators.noise_sources import band_noise
from tests.noise.over_exhaust import exhaust_scene

FS = 48_000


def _a_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(sosfilt(a_weighting_sos(FS), x) ** 2) + 1e-30)


def _lafmax(x: np.ndarray) -> float:
    return float(LevelMeter(MeterConfig(fs=FS)).feed(x.astype(np.float32))["lafmax"].max())


def _windy(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A lone exhaust pass-by (8 s around its closest approach, at 4 s) and a wind gust at 20-60 Hz peaking 3 s
    after it, 15 dB under the pass-by's mean level A-weighted."""
    scene, src = exhaust_scene(seed)
    tp = int(src["t_peak"] * FS)
    car = scene.audio[tp - 4 * FS: tp + 4 * FS].astype(np.float64)
    t = np.arange(car.size) / FS
    w = band_noise(np.random.default_rng(seed), car.size, 20.0, 60.0, FS) * np.exp(-0.5 * ((t - 7.0) / 0.8) ** 2)
    return car, w * 10 ** ((_a_db(car) - 15.0 - _a_db(w)) / 20)


@pytest.mark.parametrize("seed", [3, 7, 25])
def test_wind_under_the_level_does_not_choose_the_frames(seed):
    car, w = _windy(seed)
    assert np.mean(w**2) > 3 * np.mean(car**2)  # unweighted, the wind is the louder sound
    assert abs(_lafmax(car + w) - _lafmax(car)) < 0.05  # but it does not make the level
    alone, windy = features(car, FS, 4 * FS), features(car + w, FS, 4 * FS)
    # chosen by unweighted energy, the frames were the gust's: lf_frac 0.96-0.98 and the wind rule fired
    assert abs(windy.lf_frac - alone.lf_frac) < 0.1, (alone.lf_frac, windy.lf_frac)
    assert not rules.wind(windy)


def test_wind_that_makes_the_level_still_flags_it():
    """The gust alone, as loud as a pass-by: its frames are the loud ones, and it is wind."""
    _, w = _windy(7)
    ft = features(w * 100, FS, None)
    assert ft.lf_frac >= rules.WIND_LF and rules.wind(ft)
