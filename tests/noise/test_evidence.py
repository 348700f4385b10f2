"""Evidence records: signed with the gateway's Ed25519 key, verifiable, tamper-evident, Event-ready."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.command import key_id
from contract.evidence import EVENT_KIND, EvidenceError, canonical_bytes, verify
from contract.models import Event
from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
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
