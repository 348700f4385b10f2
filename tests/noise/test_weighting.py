"""A and C weighting against IEC 61672-1: analog reference values and class 1 acceptance limits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gateway.noise.dsp import LevelMeter, MeterConfig, laeq_per_second
from gateway.noise.errors import ConfigError
from gateway.noise.weighting import (
    EXACT_THIRD_OCTAVES,
    NOMINAL_THIRD_OCTAVES,
    a_weighting_db,
    a_weighting_sos,
    c_weighting_db,
    c_weighting_sos,
    response_db,
)

# IEC 61672-1:2013 Table 3, class 1 acceptance limits (upper, lower) in dB; -inf = no lower limit.
INF = math.inf
CLASS1 = {
    10: (3.5, -INF), 12.5: (3.0, -INF), 16: (2.5, -4.5), 20: (2.5, -2.5), 25: (2.5, -2.0), 31.5: (2.0, -1.5),
    40: (1.5, -1.5), 50: (1.5, -1.5), 63: (1.5, -1.5), 80: (1.5, -1.5), 100: (1.5, -1.5), 125: (1.5, -1.5),
    160: (1.5, -1.5), 200: (1.4, -1.4), 250: (1.4, -1.4), 315: (1.4, -1.4), 400: (1.4, -1.4), 500: (1.4, -1.4),
    630: (1.4, -1.4), 800: (1.4, -1.4), 1000: (1.1, -1.1), 1250: (1.4, -1.4), 1600: (1.6, -1.6),
    2000: (1.6, -1.6), 2500: (1.6, -1.6), 3150: (1.6, -1.6), 4000: (1.6, -1.6), 5000: (2.1, -2.1),
    6300: (2.1, -2.6), 8000: (2.1, -3.1), 10000: (2.6, -3.6), 12500: (3.0, -6.0), 16000: (3.5, -17.0),
    20000: (4.0, -INF),
}
# Reference A(f) from the sensing reference (rounded to 0.1 dB)
A_REF = {31.5: -39.4, 63: -26.2, 125: -16.1, 250: -8.6, 500: -3.2, 1000: 0.0, 2000: 1.2, 4000: 1.0,
         8000: -1.1, 16000: -6.6}


def test_analog_a_matches_reference_values():
    for nom, ref in A_REF.items():
        exact = EXACT_THIRD_OCTAVES[NOMINAL_THIRD_OCTAVES.index(nom)]
        assert float(a_weighting_db(exact)) == pytest.approx(ref, abs=0.05)
    assert float(a_weighting_db(1000.0)) == pytest.approx(0.0, abs=0.002)
    assert float(c_weighting_db(1000.0)) == pytest.approx(0.0, abs=0.002)


@pytest.mark.parametrize("fs", [48_000, 44_100])
@pytest.mark.parametrize("kind", ["A", "C"])
def test_digital_filters_within_class1_at_every_third_octave(fs, kind):
    sos = a_weighting_sos(fs) if kind == "A" else c_weighting_sos(fs)
    ref = a_weighting_db if kind == "A" else c_weighting_db
    f = np.array(EXACT_THIRD_OCTAVES)
    dev = response_db(sos, f, fs) - ref(f)
    for nom, d in zip(NOMINAL_THIRD_OCTAVES, dev, strict=True):
        hi, lo = CLASS1[nom]
        assert lo <= d <= hi, f"{kind} at {nom} Hz deviates {d:+.2f} dB (class 1: {lo}..{hi})"
    # and tighter than that where the bilinear transform is exact
    assert np.max(np.abs(dev[f < 2000])) < 0.05


def test_refuses_sample_rates_that_break_class1():
    with pytest.raises(ConfigError):
        a_weighting_sos(16_000)
    with pytest.raises(ConfigError):
        MeterConfig(fs=16_000)


@pytest.mark.parametrize("nom", [31.5, 125, 1000, 4000, 10000])
def test_meter_measures_sines_with_the_a_curve(nom):
    """End to end: a 94 dB sine at f reads 94 + A(f) within the class 1 limits."""
    fs = 48_000
    f = EXACT_THIRD_OCTAVES[NOMINAL_THIRD_OCTAVES.index(nom)]
    t = np.arange(3 * fs) / fs
    x = 10 ** ((94 - 120) / 20) * np.sin(2 * np.pi * f * t)
    m = LevelMeter()
    frames = m.feed(x)
    laeq = float(laeq_per_second(frames, m.k_db)[-1])
    hi, lo = CLASS1[nom]
    dev = laeq - (94 + float(a_weighting_db(f)))
    assert lo <= dev <= hi
    assert abs(dev) < 1.3
