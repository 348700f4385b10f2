"""Issue 13, fourth pass: a fast engine's firing comb is not a siren tone; odd-harmonic tones still are; a
two-tone horn at 6:5 is not an exhaust; the training family's domain randomisation is declared and labelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.noise.classifier import features
from gateway.noise.detector import DetectorConfig
from gateway.noise.dsp import MeterConfig
from gateway.noise.harmonics import comb_root
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from gateway.noise.rules import TONAL_LIMIT, feature_flags
from gateway.noise.spectrum import Spectrogram
from tests.noise.test_tones import FS, FULL_SCALE, _phase, at_mic, noise, tonal_frames

DOCS = Path(__file__).resolve().parents[2] / "docs" / "noise-scenes.md"


def pulse_engine(seconds: float, f_a: float, f_b: float, width_ms: float = 0.5, seed: int = 0) -> np.ndarray:
    """A straight pipe revving: one blow-down pulse per firing, firing rate sweeping f_a -> f_b, jittered."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    cycles = np.cumsum(np.linspace(f_a, f_b, n)) / FS
    fire = np.arange(1, int(cycles[-1])) + rng.normal(0, 0.01, int(cycles[-1]) - 1)
    idx = np.searchsorted(cycles, fire)
    train = np.zeros(n)
    np.add.at(train, idx[idx < n], rng.uniform(0.7, 1.0, int(np.sum(idx < n))))
    w = width_ms * 1e-3 * FS
    x = np.convolve(train, np.exp(-np.arange(int(5 * w) + 2) / w))[:n]
    return x - x.mean() + 0.05 * rng.standard_normal(n) * np.std(x)


def odd_tone(f: np.ndarray, drive: float = 0.0) -> np.ndarray:
    """A siren's tone: square-ish (odd harmonics), or a soft-clipped sine (``drive``)."""
    ph = _phase(f)
    if drive:
        return np.tanh(drive * np.sin(ph))
    return np.sin(ph) + np.sin(3 * ph) / 3 + np.sin(5 * ph) / 5 + np.sin(7 * ph) / 7


def _peaks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    spec = Spectrogram(FS)
    _, p = spec.feed(x)
    band = (spec.freqs >= 250) & (spec.freqs <= 3000)
    return p, int(np.argmax(band)) + np.argmax(p[:, band], axis=1), float(spec.freqs[1])


@pytest.mark.parametrize(("f_a", "f_b", "width_ms"), [(300.0, 360.0, 0.5), (450.0, 600.0, 0.3), (260.0, 262.0, 1.0),
                                                      (600.0, 680.0, 0.3)])
def test_a_fast_engine_firing_comb_is_not_tonal(f_a, f_b, width_ms):
    """Firing above 250 Hz: the firing frequency is the dominant narrow line with nothing below it, which the
    series test cannot excuse; its even orders make it a comb root, so no tonal run, no ``tonal_content``."""
    eng = pulse_engine(12.0, f_a, f_b, width_ms)
    p, k, df = _peaks(eng)
    assert comb_root(p, k, df).mean() > 0.9
    x = at_mic(eng, 95.0) + at_mic(noise(12.0), 60.0)
    assert tonal_frames(x)[1] == 0
    ft = features((x[: 6 * FS]).astype(np.float32), FS)
    assert ft.tonal < TONAL_LIMIT and ft.comb > 0.5
    assert "tonal_content" not in feature_flags(ft)


@pytest.mark.parametrize("drive", [0.0, 3.0])
def test_an_odd_harmonic_siren_tone_is_not_a_comb(drive):
    """A siren's square-ish or soft-clipped tone has weak even orders: it stays tonal (and makes runs)."""
    t = np.arange(12 * FS) / FS
    f = 650 + 450 * 0.5 * (1 - np.cos(2 * np.pi * t / 4.0))  # a wail, 650-1100 Hz
    tone = odd_tone(f, drive)
    p, k, df = _peaks(tone + 1e-3 * np.random.default_rng(0).standard_normal(t.size))
    assert not comb_root(p, k, df).any()
    x = at_mic(tone, 90.0) + at_mic(noise(12.0), 60.0)
    assert tonal_frames(x)[1] > 60  # of 96 frames
    assert "tonal_content" in feature_flags(features(x[: 6 * FS].astype(np.float32), FS))


def rotor_tone(f: np.ndarray, kappa: float) -> np.ndarray:
    """A rotor (mechanical) siren's tone: one smooth puff per port passing, a full comb of harmonics whose even
    orders are as strong as the odd ones (``kappa``: how short the puff is)."""
    x = np.exp(kappa * np.cos(_phase(f)))
    return x - x.mean()


@pytest.mark.parametrize("kappa", [2.0, 4.0, 8.0])
def test_a_rotor_sirens_tone_above_any_engines_firing_is_tonal(kappa):
    """Thirty-second session: the held top of a rotor siren's wail is a comb root or a firing line by those tests
    (even orders as strong as odd), so up to then the local detector excused it as an engine's firing and never
    heard rotor sirens there. Above ``SuppressionConfig.engine_max_hz`` (700 Hz) no road engine fires but a V10
    or V12 near its redline: the wail's top makes runs."""
    from gateway.noise.harmonics import firing_line

    t = np.arange(12 * FS) / FS
    tone = rotor_tone(800 + 200 * 0.5 * (1 - np.cos(2 * np.pi * t / 6.0)), kappa)  # a wail's top, 800-1000 Hz
    p, k, df = _peaks(tone + 1e-3 * np.std(tone) * np.random.default_rng(0).standard_normal(t.size))
    assert (comb_root(p, k, df) | firing_line(p, k, df)).mean() > 0.9  # an engine's line by the comb tests
    x = at_mic(tone, 90.0) + at_mic(noise(12.0), 60.0)
    assert tonal_frames(x)[1] > 90  # of 96 frames: runs


def bell_horn(f1: float, ratio: float, seconds: float) -> np.ndarray:
    """A two-tone disc horn: each tone a full comb (pulses exciting a bell resonance near the 3rd order)."""
    t = np.arange(int(seconds * FS)) / FS
    k = np.arange(1, 13)
    amps = 1 / np.sqrt(1 + 9 * (k / 3.0 - 3.0 / k) ** 2)
    x = np.zeros(t.size)
    for f in (f1, f1 * ratio):
        ph = _phase(np.full(t.size, f))
        x += sum(a * np.sin(kk * ph + kk) for kk, a in zip(k, amps, strict=True))
    return x


@pytest.mark.parametrize("waveform", ["bell", "odd"])
@pytest.mark.parametrize("f1", [330.0, 450.0])
def test_a_two_tone_horn_at_six_fifths_is_not_an_exhaust(waveform, f1):
    """A 6:5 two-tone horn (a full comb per tone, or odd harmonics), sounded for 1.2 s twice at 104 dB over road
    noise: the loudest event is not called an exhaust and is no case."""
    seconds = 12.0
    h = np.zeros(int(3.0 * FS))
    tone = bell_horn(f1, 1.2, 3.0) if waveform == "bell" else (
        odd_tone(np.full(h.size, f1)) + odd_tone(np.full(h.size, 1.2 * f1)))
    for a, b in ((0.0, 1.2), (1.6, 2.8)):
        h[int(a * FS): int(b * FS)] = tone[int(a * FS): int(b * FS)]
    x = at_mic(noise(seconds), 62.0)
    x[4 * FS: 4 * FS + h.size] += at_mic(h, 104.0)
    cfg = AnalyzerConfig(meter=MeterConfig(full_scale_db=FULL_SCALE), detector=DetectorConfig(distance_m=7.5))
    _, events = analyze_array(x.astype(np.float32), cfg)
    loud = max(events, key=lambda e: e.levels.lafmax)
    assert loud.levels.lafmax_7p5 >= 102
    assert loud.klass != "exhaust" and not loud.enforcement


def test_the_training_familys_domain_randomisation_is_declared_and_off_by_default():
    from simulators.noise_scene import STREET_MIX, generate
    from simulators.noise_wide import WIDE_RANGES

    section = DOCS.read_text()[DOCS.read_text().index("## Training family"):]
    for key in WIDE_RANGES:
        assert f"| `{key}` (train) |" in section, key
    assert "wide" not in generate(3, duration_s=12.0).labels
    reflections = []
    for seed in range(4):
        sc = generate(seed, duration_s=12.0, full_scale_db=130.0, mix={**STREET_MIX, "exhaust": 1})
        assert sc.labels["wide"] is True and np.all(np.isfinite(sc.audio))
        reflections.append(sc.labels["ground_reflection"])
        if sc.labels["ground_reflection"] is not None:
            delay, q = sc.labels["ground_reflection"]
            assert 0 < delay < 0.02 and 0 < q <= WIDE_RANGES["ground_q"][1]
    assert any(r is not None for r in reflections)  # p = 0.5 per scene: these seeds draw one


@pytest.mark.parametrize(("corner_hz", "level"), [(10.0, 98.0), (40.0, 104.0)])
def test_wind_buffeting_is_never_an_enforcement_case(corner_hz, level):
    """Wind on the microphone: power ~ f^-2 above a low corner, gated by slow gusts, aperiodic. Loud enough to
    pass the limit, it is flagged ``wind`` (whatever the model calls it) and is no case."""
    from scipy import signal

    rng = np.random.default_rng(int(corner_hz))
    seconds = 12.0
    n = int(seconds * FS)
    w = signal.sosfilt(signal.butter(2, corner_hz, fs=FS, output="sos"), rng.standard_normal(n))
    gust = np.exp(-0.5 * ((np.arange(n) / FS - 6.0) / 0.6) ** 2)
    x = at_mic(w * gust, level) + at_mic(noise(seconds), 58.0)
    cfg = AnalyzerConfig(meter=MeterConfig(full_scale_db=FULL_SCALE), detector=DetectorConfig(distance_m=7.5))
    _, events = analyze_array(x.astype(np.float32), cfg)
    loud = max(events, key=lambda e: e.levels.lafmax)
    assert loud.levels.lafmax_7p5 >= level - 2
    assert "wind" in loud.flags and not loud.enforcement


@pytest.mark.parametrize(("firing_hz", "width_ms"), [(20.0, 0.2), (40.0, 0.2), (80.0, 1.0)])
def test_firing_pulses_are_not_a_horn_onset(firing_hz, width_ms):
    """``onset`` is a sustained rise: a slow engine's pulses (10 ms level swinging by 20 dB) stay far below the
    horn threshold, a horn switching on far above it."""
    from gateway.noise.classifier import _onset
    from gateway.noise.rules import HORN_ONSET_DB
    from tests.noise.test_tones import _horn

    eng = at_mic(pulse_engine(4.0, firing_hz, 1.2 * firing_hz, width_ms), 95.0) + at_mic(noise(4.0), 60.0)
    assert _onset(eng.astype(np.float32), FS) < HORN_ONSET_DB / 2
    horn = np.zeros(6 * FS)
    h = _horn(1.2, 4.0, seed=1)
    horn[FS: FS + h.size] = h
    x = at_mic(horn, 100.0) + at_mic(noise(6.0), 62.0)
    assert _onset(x.astype(np.float32), FS) > 2 * HORN_ONSET_DB
