"""The context gate (docs/noise-suppression.md): a siren suppresses or blocks an exhaust's case only where its
tone is heard inside the event, and suppresses it only at a level that matters for the event's LAFmax."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import TONE_HEARD_DB, TONE_MATTERS_DB, AnalyzerConfig, analyze_array
from gateway.noise.spectrum import SPEC_HZ, Spectrogram
from gateway.noise.suppression import SirenSuppressor
from simulators.noise_scene import generate

NONE = {"exhaust": 1, "legal": 0, "horn": 0.0, "cd_siren": 0.0, "ev_siren": 0.0, "wind": 0.0, "rain": 0.0}
FS = 48_000


def wail(n: int, t0: float, t1: float, level_db: float, full_scale_db: float = 120.0) -> np.ndarray:
    """A slow civil-defence wail (600-1100 Hz, 8 s period) from t0 to t1 at ``level_db`` (A ~ 0 dB there)."""
    x = np.zeros(n, dtype=np.float64)
    i0, i1 = int(t0 * FS), min(n, int(t1 * FS))
    t = np.arange(i1 - i0) / FS
    f = 850 + 250 * np.sin(2 * np.pi * t / 8)
    x[i0:i1] = 10 ** ((level_db - full_scale_db) / 20) * np.sin(2 * np.pi * np.cumsum(f) / FS)
    return x


@pytest.fixture(scope="module")
def exhaust_scene():
    scene = generate(22, duration_s=24.0, mix=NONE)  # one loud exhaust, 99 dB at 7.5 m, peak at 15.5 s
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]))
    _, events = analyze_array(scene.audio, cfg)
    (alone,) = events
    assert alone.enforcement and alone.klass == "exhaust"  # the case the siren variants start from
    return scene, cfg, alone


def _with_siren(scene, cfg, t0, t1, level_db):
    x = scene.audio + wail(scene.audio.size, t0, t1, level_db).astype(np.float32)
    _, events = analyze_array(x, cfg)
    return events


def test_a_siren_that_stopped_before_the_passby_does_not_block_its_case(exhaust_scene):
    scene, cfg, alone = exhaust_scene
    # 9 s of wail ending 3 s before the event opens: loud enough to switch the local detector on (its interval
    # is held 2 s after the last tone, so it reaches within the old +-2 s window of the event)
    events = _with_siren(scene, cfg, 1.0, alone.start - 3.0, 84.0)
    ex = [e for e in events if e.start <= 15.5 <= e.end]
    assert len(ex) == 1 and ex[0].klass == "exhaust"
    assert not ex[0].suppressed and "siren_nearby" not in ex[0].flags and ex[0].enforcement


def test_a_siren_sounding_through_the_passby_suppresses_it(exhaust_scene):
    scene, cfg, alone = exhaust_scene
    # the same wail, through the pass-by, 18 dB under the exhaust's LAFmax at the microphone (under the event
    # threshold on its own): it matters (within TONE_MATTERS_DB)
    events = _with_siren(scene, cfg, 1.0, 24.0, alone.levels.lafmax - 18.0)
    ex = [e for e in events if e.start <= 15.5 <= e.end]
    assert ex and not any(e.enforcement for e in events)
    assert all(e.suppressed or "siren_nearby" in e.flags for e in ex)


def test_tone_levels_and_the_floor():
    """The suppressor's tone log is the tone's A-weighted level; a run counts against a window only where its
    tone was heard there at or above the floor."""
    spec = Spectrogram(FS, short_nfft=1024)
    s = SirenSuppressor(spec.freqs, SPEC_HZ)
    n = 30 * FS
    x = wail(n, 2.0, 14.0, 90.0) + 1e-4 * np.random.default_rng(3).standard_normal(n)
    s.feed(*spec.feed(x.astype(np.float32)))
    k_db = 120.0 - 10 * np.log10(0.5)  # full-scale sine = 120 dB: level = 10 lg(ms) + k
    levels = [10 * np.log10(ms) + k_db for t, ms in s.tone_log if 4 < t < 12]
    assert levels and np.median(levels) == pytest.approx(90.0, abs=1.5)
    assert s.local_intervals and s.reasons(8.0, 10.0) == ["local_tonal"]  # no floor: overlap is enough
    ms = lambda db: 10 ** ((db - k_db) / 10)  # noqa: E731
    assert s.reasons(8.0, 10.0, floor_ms=ms(90.0 - TONE_MATTERS_DB)) == ["local_tonal"]  # an event at 90 dB
    assert s.reasons(8.0, 10.0, floor_ms=ms(115.0 - TONE_MATTERS_DB)) == []  # an event at 115 dB: 25 dB over it
    assert s.reasons(8.0, 10.0, floor_ms=ms(115.0 - TONE_HEARD_DB)) == ["local_tonal"]  # ... still heard
    assert s.reasons(15.5, 18.0, floor_ms=ms(60.0)) == []  # in the held tail of the interval: no tone heard
    assert s.reasons(15.5, 18.0) == ["local_tonal"]  # (the overlap-only rule would have counted it)


def test_the_documented_rule_uses_the_code_s_numbers():
    from pathlib import Path

    from gateway.noise.detector import DetectorConfig as D
    from gateway.noise.pipeline import EDGE_PEAK_S

    doc = (Path(__file__).resolve().parents[2] / "docs" / "noise-suppression.md").read_text()
    assert f"`L − {TONE_MATTERS_DB:g} dB` (`TONE_MATTERS_DB`)" in doc
    assert f"`L − {TONE_HEARD_DB:g} dB` (`TONE_HEARD_DB`)" in doc
    assert f"within {EDGE_PEAK_S:g} s of its start or end (`EDGE_PEAK_S`)" in doc
    assert f"≥ {D().long_split_db:g} dB (`long_split_db`)" in doc and f"longer than {D().max_duration_s:g} s" in doc
