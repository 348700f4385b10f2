"""Siren suppression: the hub's zone state, the local tonal detector, and scenes mixing sirens and exhaust."""

from __future__ import annotations

import numpy as np
import pytest

from bench.noise_accuracy import siren_level_during
from contract.models import Signal, ZoneState, ZoneStatus
from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from gateway.noise.spectrum import SPEC_HZ, Spectrogram
from gateway.noise.suppression import SirenSuppressor, SuppressionConfig
from simulators.noise_scene import generate

NO_LOCAL = SuppressionConfig(on_fraction=2.0)  # the local detector can never switch on


def zs(version, status, ts, signal=Signal.AIR_RAID, zone="z1"):
    return ZoneState(zone=zone, version=version, status=status, ts=ts, signal=signal)


def test_zone_state_intervals():
    s = SirenSuppressor(Spectrogram(48_000).freqs, SPEC_HZ, t0=1000.0, zones={"z1"})
    s.zone_state(zs(1, ZoneStatus.ACTIVE, 1010.0))
    assert s.reasons(50, 60) == ["zone_state"]  # still sounding: open interval
    s.zone_state(zs(0, ZoneStatus.IDLE, 1015.0))  # an older version never ends it
    s.zone_state(zs(2, ZoneStatus.ALL_CLEAR, 1100.0, signal=Signal.ALL_CLEAR))
    assert s.reasons(50, 60) == ["zone_state"]
    assert s.reasons(104, 110) == []  # after 100 s + 3 s grace
    assert s.reasons(0, 9) == []
    s.zone_state(zs(3, ZoneStatus.ACTIVE, 1200.0, signal=Signal.SILENT_TEST))  # silent test: no sound
    assert s.reasons(250, 260) == []
    s.zone_state(zs(4, ZoneStatus.ACTIVE, 1300.0, zone="other"))  # not our zone
    assert s.reasons(350, 360) == []


def test_local_detector_switches_on_for_a_long_tone_only():
    fs = 48_000
    spec = Spectrogram(fs)
    s = SirenSuppressor(spec.freqs, SPEC_HZ)
    t = np.arange(45 * fs) / fs
    rng = np.random.default_rng(0)
    x = 0.001 * rng.standard_normal(t.size)
    x[5 * fs: 20 * fs] += 0.1 * np.sin(2 * np.pi * 450 * t[5 * fs: 20 * fs])  # 15 s steady siren tone
    x[35 * fs: 36 * fs] += 0.1 * np.sin(2 * np.pi * 450 * t[35 * fs: 36 * fs])  # a 1 s horn-like tone
    s.feed(*spec.feed(x))
    assert len(s.local_intervals) == 1
    a, b = s.local_intervals[0]
    assert a == pytest.approx(5.0 - 2.0, abs=0.3) and b == pytest.approx(22.0, abs=0.5)  # lead_s, hold_s
    assert s.reasons(34.5, 36.5) == []  # a short tone alone never switches it on
    assert not s.tonal_nearby(34.5, 36.5)  # 1 s is below min_run_s


def test_short_tonal_runs_and_siren_events():
    fs = 48_000
    spec = Spectrogram(fs)
    s = SirenSuppressor(spec.freqs, SPEC_HZ)
    t = np.arange(20 * fs) / fs
    x = 0.001 * np.random.default_rng(1).standard_normal(t.size)
    x[4 * fs: 8 * fs] += 0.1 * np.sin(2 * np.pi * 500 * t[4 * fs: 8 * fs])  # 4 s: a siren starting, then masked
    s.feed(*spec.feed(x))
    assert s.local_intervals == [] and s.reasons(0, 20) == []  # not enough to suppress ...
    assert s.tonal_nearby(9.0, 12.0) and not s.tonal_nearby(11.0, 14.0)  # ... enough to block enforcement
    s.siren_event(15.0, 18.0)  # the classifier heard a siren
    assert s.reasons(17.0, 19.0) == ["local_tonal"] and s.local_intervals[-1][0] == 13.0


@pytest.mark.parametrize("seed", [61, 62, 63])
@pytest.mark.parametrize("local", [True, False])
def test_sirens_with_exhaust_never_make_enforcement_cases(seed, local):
    """Civil-defence siren known to the hub (zone state) or not (local detector), with loud exhausts."""
    scene = generate(seed, duration_s=40.0, mix={"exhaust": 2, "legal": 0, "horn": 0.0, "cd_siren": 1.0,
                                                 "ev_siren": 0.0, "wind": 0.0, "rain": 0.0})
    siren = next(s for s in scene.sources if s["class"] == "siren")
    zone = [[siren["t_start"], siren["t_end"]]]
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]),
                         suppression=SuppressionConfig() if local else NO_LOCAL)
    _, events = analyze_array(scene.audio, cfg, zone_intervals=None if local else zone)
    during = [e for e in events if e.start < siren["t_end"] and siren["t_start"] < e.end]
    assert during, "the siren's events are kept, never dropped"
    for e in during:
        assert not e.enforcement
        core = e.start < siren["t_end"] - 1 and siren["t_start"] + 1 < e.end
        if core:  # blocked for a siren reason, or (a siren masked > 6 s by traffic) never enforceable anyway
            # (edge_peak: the flank of a long piece cut around a standing-out maximum, sixth pass)
            assert e.suppressed or {"siren_nearby", "tonal_content", "cut", "too_long", "edge_peak"} & set(e.flags)
    # events the siren itself makes (its own level at the event's peak within 10 dB of the event's LAFmax)
    # are suppressed; a much louder exhaust passing during the siren is flagged and never enforced (above)
    caused = [e for e in during if siren["t_start"] + 2 < e.peak < siren["t_end"] - 2
              and siren_level_during(siren, e.peak - 0.5, e.peak + 0.5) >= e.levels.lafmax - 10]
    # (a flank of a long piece cut around a standing-out maximum has its maximum at its edge, made by the
    # neighbouring pass-by: edge_peak, never a case, whatever it is suppressed for)
    assert all(e.suppression or ("edge_peak" in e.flags and not e.enforcement) for e in caused)


def _run_frames(audio: np.ndarray, config: SuppressionConfig | None = None) -> tuple[int, int]:
    spec = Spectrogram(48_000, short_nfft=1024)
    sup = SirenSuppressor(spec.freqs, SPEC_HZ, config)
    for i in range(0, audio.size, 48_000):
        sup.feed(*spec.feed(audio[i: i + 48_000]))
    return sup.run_frames, sup.frames_seen


def test_an_engine_line_that_flickers_between_tone_and_engine_order_makes_no_run(monkeypatch):
    """Issue 13, sixth pass: a 12-cylinder pulse-train exhaust firing at 420-770 Hz (training scene of seed
    994337, scene 2, without the sixth pass's textures) shows its firing line as a narrow peak whose lower orders
    come and go: frame by frame the line is a lone tone, then an engine order again. Such a line starts no run
    (at most one excused frame per engine_ratio tonal frames); before, its run chained across the vehicles that
    followed (89 of 320 frames). Switching the rule off (engine_ratio 0) brings the run back. The scene is drawn
    with the pop ranges it was found with (the twenty-first session widened them, which changes the scene)."""
    from simulators.noise_scene import STREET_MIX
    from simulators.noise_wide import WIDE_RANGES

    monkeypatch.setitem(WIDE_RANGES, "crackle_per_s", (2.0, 40.0))
    monkeypatch.setitem(WIDE_RANGES, "crackle_db_rel", (-6.0, 14.0))

    sc = generate(994337 * 100_003 + 2, mix={**STREET_MIX, "texture": 0.0}, full_scale_db=None)
    assert not any(s.get("class") in ("siren", "horn") for s in sc.sources)
    runs, frames = _run_frames(sc.audio)
    assert frames == 320 and runs <= 0.05 * frames
    # without the rule it runs again: 25 frames (60 before a held run stopped following engine orders)
    assert _run_frames(sc.audio, SuppressionConfig(engine_ratio=0.0))[0] >= 20


def test_engine_orders_passing_a_horns_pitch_do_not_hold_its_run_over_the_next_pass_by():
    """Training scene 9017: a 100 dB horn (14.0-17.4 s) makes a counted tonal run; a 101.5 dB two-cylinder
    motorcycle follows (event 17.9-25.6 s). Its orders, sweeping past the horn's pitch, held the run for 6 s
    more and opened a siren interval over the motorcycle: a true case suppressed with no siren in the scene.
    A held run now follows no engine order."""
    sc = generate(9017, duration_s=40.0, mix={"exhaust": 2})
    assert not any(s["class"] == "siren" for s in sc.sources)
    moto = next(s for s in sc.sources if s["class"] == "exhaust" and s["lafmax_7p5_db"] > 100)
    _, events = analyze_array(sc.audio, AnalyzerConfig(detector=DetectorConfig(distance_m=sc.labels["distance_m"])))
    assert all(not e.suppressed for e in events)
    hit = [e for e in events if e.start <= moto["t_peak"] <= e.end]
    assert len(hit) == 1 and hit[0].klass == "exhaust" and hit[0].enforcement


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sirens_still_make_runs_under_the_engine_order_rule(seed):
    """The rule must not cost the detector its sirens: a civil-defence siren alone (training family) fills most
    of its frames with runs whatever engine_ratio is."""
    sc = generate(seed, duration_s=30.0, full_scale_db=130.0,
                  mix={"exhaust": 0, "legal": 0, "far": 0, "cd_siren": 1.0, "horn": 0, "ev_siren": 0, "wind": 0,
                       "rain": 0})
    src = next(s for s in sc.sources if s["class"] == "siren")
    runs, frames = _run_frames(sc.audio)
    assert runs >= 0.5 * (float(src["t_end"]) - float(src["t_start"])) * SPEC_HZ
    assert runs == _run_frames(sc.audio, SuppressionConfig(engine_ratio=0.0))[0]
