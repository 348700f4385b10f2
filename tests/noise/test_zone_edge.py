"""The hub's zone state at an event's edge: it blocks a case only where this microphone hears a siren's tone
(and since the nineteenth session the event is then cut at the zone's edge: ``gateway.noise.siren_cut``).

Inside an event's core (its maximum +- ``CORE_S``) the zone state always suppresses. Outside it, a zone whose
sirens start (or stop) while a pass-by fades blocks the case only if a siren tone at no less than
``TONE_HEARD_DB`` under the event's LAFmax was heard in the overlap: a siren this microphone does not hear does
not touch the level at the maximum (seventeenth session: on 128 independent scenes 4 events covering 5 of 125
enforcement truths were blocked that way: the zone's sirens 28-60 dB under the event there, or not in it).
"""

from __future__ import annotations

import numpy as np
import pytest

from gateway.noise.dsp import MeterConfig
from gateway.noise.pipeline import CORE_S, AnalyzerConfig, analyze_array
from gateway.noise.spectrum import SPEC_HZ, Spectrogram
from gateway.noise.suppression import SirenSuppressor
from simulators import noise_sources as src
from simulators.noise_measure import laeq_db, lafmax_db

FS = 48_000


def test_a_zone_interval_counts_outside_the_core_only_where_a_tone_was_heard():
    spec = Spectrogram(FS)
    s = SirenSuppressor(spec.freqs, SPEC_HZ)
    t = np.arange(30 * FS) / FS
    x = 0.001 * np.random.default_rng(0).standard_normal(t.size)
    x[20 * FS:] += 0.1 * np.sin(2 * np.pi * 600 * t[20 * FS:])  # the zone's siren is heard from 20 s on
    s.feed(*spec.feed(x))
    s.add_zone_interval(15.0, 60.0)
    floor = 1e-9  # any tone at all
    assert s.reasons(10.0, 17.0) == ["zone_state"]  # without a floor the zone state always counts
    assert s.reasons(10.0, 17.0, zone_floor_ms=floor) == []  # 15-17 s: the zone is on, nothing heard here
    assert "zone_state" in s.reasons(10.0, 22.0, zone_floor_ms=floor)  # heard from 20 s (the local detector too)
    assert "zone_state" not in s.reasons(10.0, 22.0, zone_floor_ms=1e9)  # ... but not that loud
    assert "zone_state" in s.reasons(28.0, 35.0, zone_floor_ms=1e9)  # past the frames seen: cannot rule out


def _pass_by(siren_db: float | None, zone_from_end_s: float, zone: bool = True) -> tuple:
    """A loud exhaust passing at 105 dB (7.5 m), the hub's zone active from ``zone_from_end_s`` before the event
    ends, and (``siren_db``) a siren tone at this LAFmax at the microphone for the 1.5 s after that (too short
    for the local detector's runs: what is heard there is the zone's business). Returns the loudest event
    without the zone and the siren, and with them (``zone=False``: the siren only)."""
    t = np.arange(int(30 * FS)) / FS
    x, _ = src.engine(np.random.default_rng(6), t, FS, loud=True, moto=False, t_peak=10.0, speed=15.0, dist=7.5)
    bg, _ = src.background(np.random.default_rng(5), t.size, FS)
    audio = x * 10 ** ((105.0 - lafmax_db(x, FS, 130.0)) / 20) + bg * 10 ** ((60.0 - laeq_db(bg, FS, 130.0)) / 20)
    cfg = AnalyzerConfig(meter=MeterConfig(fs=FS, full_scale_db=130.0))
    _, events = analyze_array(audio.astype(np.float32), cfg)
    e0 = max(events, key=lambda e: e.levels.lafmax)
    z = e0.end - zone_from_end_s
    assert z > e0.peak + CORE_S  # outside the core
    if siren_db is not None:
        on = (t >= z) & (t < z + 1.5)
        tone = np.where(on, np.sin(2 * np.pi * 700 * t) + 0.5 * np.sin(2 * np.pi * 1400 * t), 0.0)
        audio = audio + tone * 10 ** ((siren_db - lafmax_db(tone, FS, 130.0)) / 20)
    _, events = analyze_array(audio.astype(np.float32), cfg, zone_intervals=[[z, z + 60.0]] if zone else None)
    e = max(events, key=lambda ev: ev.levels.lafmax)
    return e0, e, events, z


def test_a_zone_siren_the_microphone_does_not_hear_leaves_the_pass_by_its_case():
    e0, e, _, _ = _pass_by(None, 1.5)
    assert e0.enforcement and not e0.flags  # the case without any zone
    assert (e.start, e.peak) == (e0.start, e0.peak) and not e.suppressed
    assert "siren_nearby" not in e.flags and e.enforcement


def test_a_zone_siren_heard_at_the_events_edge_is_cut_away_from_the_pass_by():
    """The siren heard where the zone is on, outside the core, blocked the whole event's case until the
    nineteenth session; now the event is cut where the zone's siren is heard (gateway.noise.siren_cut): the
    pass-by's record keeps its maximum and its case, and the part with the siren is a record of its own that
    is none."""
    e0, e, events, z = _pass_by(88.0, 1.5)  # a siren tone 17 dB under the 105 dB maximum, heard where the zone is on
    assert e0.enforcement
    assert (e.start, e.peak, e.levels.lafmax) == (e0.start, e0.peak, e0.levels.lafmax)
    assert e.end == pytest.approx(z, abs=0.11) and e.enforcement and "siren_nearby" not in e.flags
    rest = [x for x in events if e.end - 0.05 <= x.start < e0.end]
    assert rest and not any(x.enforcement for x in rest)  # the siren's part: no case
    assert all(x.suppressed or "siren_nearby" in x.flags for x in rest)
    assert rest[-1].end >= e0.end - 0.05  # nothing lost: the parts cover the old event (and the tone after it)
    _, alone, _, _ = _pass_by(88.0, 1.5, zone=False)  # the same tone without the zone: too short to block
    assert alone.enforcement and (alone.start, alone.peak) == (e0.start, e0.peak)


def _zoned(audio: np.ndarray, scene, zone_end: float) -> list:
    from gateway.noise.detector import DetectorConfig

    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]))
    return analyze_array(audio, cfg, block=scene.fs, zone_intervals=[[0.0, zone_end]])[1]


@pytest.mark.parametrize("before_s", [2.3, 3.5])
def test_in_the_zones_grace_an_exhausts_own_tones_are_no_siren_but_a_run_down_is(before_s):
    """The hub says its sirens stopped ``before_s`` before a confident exhaust's maximum: the 3 s grace reaches
    its core. Its engine's flickering orders there are no siren tone heard (thirty-second session; they
    suppressed this exhaust before); a siren's tone going on into the grace is, even where the approaching
    exhaust masks it into a short run (the counted run's tail)."""
    from tests.noise.over_exhaust import covering, exhaust_scene
    from tests.noise.test_siren_inside import siren, with_sound

    scene, src_ = exhaust_scene(3)
    zone_end = src_["t_peak"] - before_s
    alone = covering(_zoned(scene.audio, scene, zone_end), src_["t_peak"])
    assert [(e.klass, e.suppressed) for e in alone] == [("exhaust", False)]
    audio = with_sound(scene, src_, siren("two_tone", 8.0 - before_s + 1.5), 10.0, lead_s=8.0)  # to 1.5 s after
    sounding = covering(_zoned(audio, scene, zone_end), src_["t_peak"])
    assert [e.suppression for e in sounding] == [("zone_state",)]
