"""An emergency siren sounding a few dB under a loud exhaust must not make an enforcement case (issue 13,
``rules.siren_inside``, ``gateway.noise.siren_probe``).

The siren is never the dominant peak of a frame under such an exhaust, so the tonal tests and the local detector
do not hear it; its periodic call (a yelp's or a rumbler's sweep, a hi-lo or two-tone alternation) still shows in
the narrow bins it crosses. The same exhausts alone stay cases, and engines whose rpm moves periodically (throttle
blips, gear changes, a fast engine revving), horns and a tram's squeal over the exhaust raise no ``siren_inside``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from gateway.noise.features import features
from gateway.noise.rules import SIREN_INSIDE
from simulators.noise_measure import lafmax_db
from tests.noise.over_exhaust import analyze, covering, exhaust_scene

LONE = (27, 17)  # lone exhausts that are enforcement cases (104-106 dB at 7.5 m)
FS = 48_000


def square_tone(f: np.ndarray, n_odd: int = 4, even: float = 0.15) -> np.ndarray:
    """A siren driver's square-ish tone on the instantaneous frequency ``f`` (odd harmonics 1/h, weak even ones)."""
    ph = 2 * np.pi * np.cumsum(f) / FS
    return sum((1.0 / h) * (1.0 if h % 2 else even) * np.sin(h * ph) for h in range(1, 2 * n_odd + 1))


def siren(kind: str, seconds: float, lo: float = 650.0, hi: float = 1500.0) -> np.ndarray:
    """Emergency-siren calls (docs: /work/shared/reference: yelp 0.1-0.5 s cycles, hi-lo 1.2-1.45x, two-tone)."""
    t = np.arange(int(seconds * FS)) / FS
    if kind in ("yelp", "rumbler"):  # a fast upward sweep over an octave and back, 0.27 s cycle
        f = lo * (hi / lo) ** np.sqrt((t / 0.27) % 1.0)
        x = square_tone(f)
        if kind == "rumbler":  # plus the low-frequency woofer siren two octaves down
            x = x + 1.5 * np.tanh(2 * np.sin(2 * np.pi * np.cumsum(f / 4) / FS))
        return x
    if kind == "hilo":
        return square_tone(np.where((t / 1.1) % 1.0 < 0.5, lo, lo * 1.33))
    assert kind == "two_tone"  # the European 440/587 Hz call, 1.6 s cycle
    return square_tone(np.where((t / 1.6) % 1.0 < 0.5, 440.0, 587.0))


def with_sound(scene, src, x: np.ndarray, under_db: float, lead_s: float) -> np.ndarray:
    """The scene's audio with ``x`` added ``under_db`` under the exhaust's LAFmax, starting ``lead_s`` before the
    exhaust's peak."""
    fsdb = float(scene.labels.get("full_scale_db", 120.0))
    loud = lafmax_db(scene.audio, scene.fs, fsdb)
    x = x * 10 ** ((loud - under_db - lafmax_db(x, scene.fs, fsdb)) / 20)
    a = int((src["t_peak"] - lead_s) * scene.fs)
    audio = scene.audio.astype(np.float64).copy()
    audio[a: a + x.size] += x[: audio.size - a]
    return audio.astype(np.float32)


@pytest.mark.parametrize("seed", LONE)
def test_the_lone_exhaust_is_a_case(seed):
    scene, src = exhaust_scene(seed)
    hit = covering(analyze(scene.audio, scene), src["t_peak"])
    assert [e.enforcement for e in hit] == [True]
    assert hit[0].features["siren_inside"] < SIREN_INSIDE


@pytest.mark.parametrize("seed", LONE)
@pytest.mark.parametrize("kind", ["yelp", "rumbler", "hilo", "two_tone"])
@pytest.mark.parametrize("under_db", [3.0, 8.0])
def test_a_siren_under_a_loud_exhaust_makes_no_case(seed, kind, under_db):
    scene, src = exhaust_scene(seed)
    audio = with_sound(scene, src, siren(kind, 10.0), under_db, lead_s=5.0)  # sounding through the pass-by
    hit = covering(analyze(audio, scene), src["t_peak"])
    assert hit, "the pass-by made no event"
    assert [e for e in hit if e.enforcement] == []
    assert any("siren_inside" in e.flags for e in hit)


def engine(f0: np.ndarray, rng: np.random.Generator, orders: int = 40, tilt: float = 0.8,
           hnr_db: float = 6.0) -> np.ndarray:
    """An engine: orders of the firing frequency ``f0`` (amplitude h**-tilt) over broadband roar."""
    ph = 2 * np.pi * np.cumsum(f0) / FS
    x = sum(h ** -tilt * np.sin(h * ph + rng.uniform(0, 6)) * (f0 * h < FS / 2.2) for h in range(1, orders + 1))
    roar = signal.sosfilt(signal.butter(2, [60, 6000], "bandpass", fs=FS, output="sos"), rng.standard_normal(f0.size))
    return x / np.std(x) * 10 ** (hnr_db / 20) + roar / np.std(roar)


def engines() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    t = np.arange(8 * FS) / FS
    blip = (t / 0.8) % 1.0  # throttle blips every 0.8 s: 45 -> 95 Hz in 0.24 s, back over 0.56 s
    gear = (t / 1.4) % 1.0  # accelerating through gears: rpm ramps up for 1.4 s, drops at each change
    return {
        "revving": engine(np.where(blip < 0.3, 45 + 50 * blip / 0.3, 95 - 50 * (blip - 0.3) / 0.7), rng),
        "gears": engine(60 * (1 + 0.45 * gear) * (1 + 0.05 * t), rng),
        "fast_rev": engine(250 + 40 * (1 - np.cos(2 * np.pi * t / 1.1)), rng, orders=10, hnr_db=10.0),
    }


@pytest.mark.parametrize("name", ["revving", "gears", "fast_rev"])
def test_periodic_rpm_is_no_siren_call(name):
    """The orders of an engine whose rpm rises and falls periodically sweep like a slow yelp; they stay a comb of
    lines a firing frequency apart, which the probe refuses."""
    x = engines()[name].astype(np.float32)
    assert features(x, FS, x.size // 2).siren_inside == 0.0


def horn(kind: str, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    if kind == "two_tone":  # a car's two-tone horn, a major third apart
        f = [410.0, 512.5]
    else:  # a truck's air-horn chord
        f = [220.0, 277.0, 330.0]
    x = sum(square_tone(np.full(t.size, fk), 5, 0.5) for fk in f)
    ramp = int(0.01 * FS)
    x[:ramp] *= np.linspace(0, 1, ramp)
    x[-ramp:] *= np.linspace(1, 0, ramp)
    return x


def squeal(seconds: float) -> np.ndarray:
    """A tram's wheel squeal: a held 2.8 kHz tone wobbling in pitch and level."""
    t = np.arange(int(seconds * FS)) / FS
    f = 2800 + 60 * np.sin(2 * np.pi * t / 0.9)
    return np.sin(2 * np.pi * np.cumsum(f) / FS) * (1 + 0.5 * np.sin(2 * np.pi * t / 0.37))


@pytest.mark.parametrize("seed", LONE)
@pytest.mark.parametrize("other", ["horn_two_tone", "horn_air", "squeal"])
def test_horns_and_squeal_are_no_siren_call(seed, other):
    scene, src = exhaust_scene(seed)
    x = squeal(6.0) if other == "squeal" else horn(other.removeprefix("horn_"), 1.4)
    hit = covering(analyze(with_sound(scene, src, x, 3.0, lead_s=0.9), scene), src["t_peak"])
    assert hit
    assert all("siren_inside" not in e.flags for e in hit)


def test_the_rule_fires_at_its_threshold_only():
    from gateway.noise.classifier import Features
    from gateway.noise.rules import feature_flags

    base = dict(tonal=0.0, sweep_oct=0.0, sweep_rate=0.0, two_tone_56=0.0, engine=20.0, f0_move=0.5,
                lf_frac=0.2, duration_s=4.0)
    assert feature_flags(Features(**base, siren_inside=SIREN_INSIDE - 0.01)) == []
    assert feature_flags(Features(**base, siren_inside=SIREN_INSIDE)) == ["siren_inside"]


def test_siren_inside_is_not_a_model_input():
    model = json.loads((Path(__file__).parents[2] / "gateway/noise/models/classifier.json").read_text())
    assert "siren_inside" not in model["features"]
    assert "horn_inside" not in model["features"]


def test_quiet_noise_and_short_audio_make_no_call():
    rng = np.random.default_rng(3)
    assert features((1e-5 * rng.standard_normal(8 * FS)).astype(np.float32), FS, 4 * FS).siren_inside == 0.0
    assert features(rng.standard_normal(FS // 10).astype(np.float32), FS, FS // 20).siren_inside == 0.0


def test_a_yelp_alone_is_a_strong_call():
    """The probe itself, without the pipeline: a yelp over white noise, 3 dB under it."""
    rng = np.random.default_rng(4)
    noise = rng.standard_normal(8 * FS)
    x = siren("yelp", 8.0)
    x = (noise + x * np.sqrt(0.5 / np.mean(x**2))).astype(np.float32)
    assert features(x, FS, 4 * FS).siren_inside >= SIREN_INSIDE
