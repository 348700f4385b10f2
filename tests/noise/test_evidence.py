"""Evidence records: signed with the gateway's Ed25519 key, verifiable, tamper-evident, Event-ready."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.command import key_id
from contract.evidence import EVENT_KIND, EvidenceError, canonical_bytes, verify
from contract.models import Event
from gateway.noise.chains import under_envelope
from gateway.noise.detector import DetectorConfig
from gateway.noise.dsp import LevelMeter, MeterConfig
from gateway.noise.pipeline import AnalyzerConfig, NoiseAnalyzer, analyze_array
from simulators.noise_scene import generate

KEY = Ed25519PrivateKey.generate()
KEYS = {key_id(KEY.public_key()): KEY.public_key()}


@pytest.fixture(scope="module")
def records():
    scene = generate(71, duration_s=20.0, mix={"exhaust": 1, "legal": 0, "horn": 0.0, "cd_siren": 0.0,
                                               "ev_siren": 0.0, "wind": 0.0, "rain": 0.0})
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]), gateway="gw-7",
                         sensor="mic-2", lat=50.45, lon=30.52, calibration_date="2026-11-01")
    _, events = analyze_array(scene.audio, cfg, key=KEY)
    assert len(events) == 1
    clip_cfg = AnalyzerConfig(detector=cfg.detector, audio_clip=True)
    _, with_clip = analyze_array(scene.audio, clip_cfg, key=KEY)
    return events[0], with_clip[0]


def test_record_contents(records):
    rec, _ = records
    d = rec.to_data()
    assert d["class"] == "exhaust" and d["gateway"] == "gw-7" and d["sensor"]["id"] == "mic-2"
    assert d["location"]["distance_to_lane_m"] > 0 and d["sensor"]["calibration_date"] == "2026-11-01"
    assert set(d["scores"]) == {"exhaust", "siren", "horn", "other"}
    n = len(d["trace"]["laf"])
    a, b = max(rec.start - 5.0, 0.0), min(rec.end + 5.0, 20.0)  # +-5 s around the event, within the stream
    assert n == pytest.approx(round((b - a) * 10), abs=2)
    assert d["trace"]["t0"] == pytest.approx(a, abs=0.11)
    assert max(d["trace"]["laf"]) == pytest.approx(rec.levels.lafmax, abs=0.01)
    assert d["spectrum"]["bands_hz"][0] == 20 and len(d["spectrum"]["levels_db"]) == len(d["spectrum"]["bands_hz"])
    assert d["levels"]["lcpeak"] > d["levels"]["lafmax"]
    assert d["audio"] is None  # privacy: no audio unless configured
    assert d["clock"]["synced"] is False


def test_signature_verifies_and_survives_json(records):
    rec, _ = records
    assert verify(rec, KEYS) == rec
    wire = json.loads(json.dumps(rec.to_data()))
    assert verify(wire, KEYS).id == rec.id
    ev = Event(gateway="gw-7", id=rec.id, kind=EVENT_KIND, ts=rec.peak, data=rec.to_data())
    again = Event.model_validate_json(ev.to_bytes())
    assert verify(again.data, KEYS).levels == rec.levels
    assert canonical_bytes(wire) == canonical_bytes(rec)


@pytest.mark.parametrize("path", [("levels", "lafmax_7p5"), ("class",), ("suppressed",), ("trace", "laf"),
                                  ("start",), ("location", "lat")])
def test_tampered_record_fails(records, path):
    rec, _ = records
    d = json.loads(json.dumps(rec.to_data()))
    node = d
    for k in path[:-1]:
        node = node[k]
    v = node[path[-1]]
    node[path[-1]] = (v + 0.01 if isinstance(v, float) else "other" if isinstance(v, str)
                      else (not v) if isinstance(v, bool) else [x + 1 for x in v])
    with pytest.raises(EvidenceError, match="bad signature"):
        verify(d, KEYS)


def test_unknown_key_unsigned_and_garbage(records):
    rec, _ = records
    other = Ed25519PrivateKey.generate()
    with pytest.raises(EvidenceError, match="unknown key"):
        verify(rec, {key_id(other.public_key()): other.public_key()})
    with pytest.raises(EvidenceError, match="not signed"):
        verify(rec.model_copy(update={"signature": None}), KEYS)
    d = rec.to_data()
    d["signature"]["sig"] = "!!"
    with pytest.raises(EvidenceError):
        verify(d, KEYS)
    with pytest.raises(EvidenceError, match="invalid record"):
        verify({"v": 1, "id": "x"}, KEYS)


def test_audio_clip_only_when_asked(records):
    _, clipped = records
    assert clipped.audio is not None and clipped.audio.data.startswith("UklGR")  # base64 of "RIFF"
    assert verify(clipped, KEYS).audio == clipped.audio


def _passing(dip: bool) -> np.ndarray:
    """20 s of a broadband source passing 7.5 m away at 50 km/h, 106 dB at its closest (t = 10 s); with ``dip``
    the throttle is shut for 0.7 s from 0.3 s after the maximum (the level falls 21 dB, then comes back)."""
    fs = 48_000
    t = np.arange(20 * fs) / fs
    env_db = -10 * np.log10(1 + (13.9 * (t - 10.0) / 7.5) ** 2)
    if dip:
        env_db[(t >= 10.3) & (t < 11.0)] -= 30.0
    x = np.random.default_rng(5).standard_normal(t.size) * 10 ** (env_db / 20)
    lv = LevelMeter(MeterConfig(fs=fs)).feed(x)["lafmax"].max()
    return (x * 10 ** ((106.0 - lv) / 20)).astype(np.float32)


def test_one_pass_by_is_one_record_over_its_approach_and_departure():
    """The detector splits the pass-by at the dip; the piece after it stays under the pass-by's envelope and is
    of the same class, so it is absorbed: one signed record whose start/end cover the whole stretch, whose
    ``pass_by`` is the piece that was measured and whose levels are the undipped pass-by's. Without the dip
    the record has no ``pass_by`` (and its JSON no such key: older readers see what they saw)."""
    _, plain = analyze_array(_passing(False), AnalyzerConfig(), key=KEY)
    assert len(plain) == 1 and plain[0].pass_by is None and "pass_by" not in plain[0].to_data()
    _, dipped = analyze_array(_passing(True), AnalyzerConfig(), key=KEY)
    assert len(dipped) == 1
    rec = verify(json.loads(json.dumps(dipped[0].to_data())), KEYS)
    pb = rec.pass_by
    assert pb is not None and pb.absorbed == 1
    assert rec.start == pb.start < rec.peak < pb.end <= 11.0 < rec.end
    assert (rec.start, rec.end) == (plain[0].start, plain[0].end)
    assert rec.duration_s == pytest.approx(rec.end - rec.start, abs=0.01)
    assert len(rec.trace.laf) == len(plain[0].trace.laf)  # the trace covers the whole record
    assert rec.levels.lafmax == pytest.approx(plain[0].levels.lafmax, abs=0.05)
    tampered = dict(dipped[0].to_data(), pass_by={"start": pb.start, "end": rec.end, "absorbed": 1})
    with pytest.raises(EvidenceError):
        verify(tampered, KEYS)


def test_a_quieter_piece_of_another_class_keeps_its_own_record():
    """A two-tone horn honks 108 dB over a 100 dB broadband pass-by whose throttle shuts as the honk ends: the
    detector splits them at the dip, one chain. The pass-by's piece lies under the honk's envelope (the level
    alone would call it the honk's departure), but it is classed differently, so it keeps its own record."""
    fs = 48_000
    t = np.arange(20 * fs) / fs
    x = np.random.default_rng(5).standard_normal(t.size) * 10 ** (
        -10 * np.log10(1 + (13.9 * (t - 10.3) / 7.5) ** 2) / 20)
    x *= 10 ** ((100.0 - LevelMeter(MeterConfig(fs=fs)).feed(x)["lafmax"].max()) / 20)
    x[(t >= 9.6) & (t < 10.2)] *= 10 ** (-30 / 20)
    on = (t >= 8.5) & (t < 9.6)
    horn = np.zeros_like(x)
    horn[on] = np.sin(2 * np.pi * 420.0 * t[on]) + np.sin(2 * np.pi * 504.0 * t[on])
    horn *= 10 ** ((108.0 - LevelMeter(MeterConfig(fs=fs)).feed(horn)["lafmax"].max()) / 20)
    cfg = AnalyzerConfig()
    an = NoiseAnalyzer(cfg)
    recs = an.feed((x + horn).astype(np.float32)).events + an.close().events
    assert [r.klass for r in recs] == ["horn", "exhaust"] and recs[0].end == recs[1].start
    assert all(r.pass_by is None for r in recs) and an.counters["absorbed"] == 0
    honk, car = (SimpleNamespace(peak=round((r.peak - 0.05) * 10), lafmax=r.levels.lafmax) for r in recs)
    assert under_envelope(car, honk, cfg.detector.skirt_speed_mps, cfg.detector.slant_m)
