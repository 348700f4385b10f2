"""The violations register end to end: signed pass-by Events over a real Mosquitto (QoS 1) -> a real hub (SQLite
register, review rules) -> `dozor noise ...` as real CLI processes; noise_event points in a real InfluxDB 1.6."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.noise.detector import DetectorConfig
from gateway.noise.pipeline import AnalyzerConfig, analyze_array
from simulators.noise_scene import generate
from tests.hub.helpers import api, eventually, hub_token
from tests.ingest.helpers import Publisher, influx_count, store_config
from tests.ingest.test_cli import dozor
from tests.ingest.test_hub_ingest import hub_running
from tests.tokens import add_user
from tests.violations.helpers import NOV, OCT, enroll_gateways, event_msg, pub_b64, record

pytestmark = pytest.mark.integration
KEY_N1, KEY_S1, KEY_N2 = (Ed25519PrivateKey.generate() for _ in range(3))  # gw-n2's key is not known to the hub
SINCE = "2026-11-01T00:00Z"


@pytest.fixture(scope="module")
def gateway_record():
    """A record built by the gateway's own analyzer (gateway.noise) from a synthetic loud exhaust pass-by: it is
    an exhaust over the candidate threshold but under enforcement (L75 - uncertainty < 95 dB)."""
    scene = generate(71, duration_s=20.0, mix={"exhaust": 1, "legal": 0, "horn": 0.0, "cd_siren": 0.0,
                                               "ev_siren": 0.0, "wind": 0.0, "rain": 0.0})
    cfg = AnalyzerConfig(detector=DetectorConfig(distance_m=scene.labels["distance_m"]), gateway="gw-s1",
                         sensor="mic-7", lat=50.40, lon=30.60, t0=NOV + 7200)
    _, events = analyze_array(scene.audio, cfg, key=KEY_S1)
    assert len(events) == 1 and events[0].klass == "exhaust" and events[0].candidate
    assert not events[0].enforcement
    return events[0]


def _count(hub, outcome: str) -> int:
    return hub.violations.counters[outcome]


async def test_register_review_report_exports_and_points(mosquitto, influx1, tmp_path, gateway_record):
    cfg = store_config(tmp_path, mosquitto.port, influx1)
    cfg = cfg.model_copy(update={"noise": cfg.noise.model_copy(update={
        "gateway_keys": {"gw-n1": (pub_b64(KEY_N1),), "gw-s1": (pub_b64(KEY_S1),)}})})
    loud = record("gw-n1", NOV, 98.2, key=KEY_N1, pass_by=(NOV, NOV + 1.9))     # verified, enforceable
    siren = record("gw-n1", NOV + 600, 101.0, klass="siren", suppression=("classified_siren", "zone_active"),
                   key=KEY_N1)                                                  # siren-suppressed
    south = record("gw-s1", NOV + 1200, 97.5, sensor="mic-7", lat=None, lon=None, key=KEY_S1)  # no coordinates
    stranger = record("gw-n2", NOV + 1800, 99.0, key=KEY_N2)                    # key unknown: unverified
    october = record("gw-n1", OCT, 99.5, key=KEY_N1)                            # another month
    tampered = record("gw-n1", NOV + 2400, 90.0, key=KEY_N1).to_data()
    tampered["levels"]["lafmax_7p5"] = 99.9                                     # raised after signing
    tampered["enforcement"] = True
    forged = record("gw-s1", NOV + 3000, 99.0, key=KEY_S1)                     # gw-n1 sends gw-s1's record
    good = [loud, siren, south, stranger, october, gateway_record]
    pub = Publisher(mosquitto.port)
    try:
        async with hub_running(cfg) as hub:
            enroll_gateways(cfg.hub.state_dir, "gw-n1", "gw-n2", "gw-s1")
            msgs = [event_msg(r) for r in good]
            bad = [event_msg(tampered), event_msg(forged, gateway="gw-n1"),
                   event_msg({"v": 1, "id": "x", "gateway": "gw-n1", "sensor": {"id": "mic-1"}}),]
            # the first two re-sent by their gateways (freshly sealed, as after a gateway restart): the register
            # stores each record once. (The same sealed bytes again are a replay, refused before the register.)
            again = [event_msg(r) for r in good[:2]]
            await asyncio.to_thread(pub.publish_all, msgs + bad + again)
            await eventually(lambda: sum(hub.violations.counters.values()) >= len(good) + len(bad) + 2,
                             what="every event handled")
            assert dict(hub.violations.counters) == {
                "stored_verified": 5, "stored_unverified": 1, "duplicate": 2, "rejected_bad_signature": 1,
                "rejected_gateway_mismatch": 1, "rejected_invalid": 1}
            async with api(cfg, hub_token(hub)) as http:
                metrics = (await http.get("/metrics")).text
                assert 'dozor_hub_noise_events_total{outcome="rejected_bad_signature"} 1.0' in metrics
                rows = (await http.get("/api/v1/noise/events", params={"since": SINCE})).json()
                assert [r["id"] for r in rows] == [loud.id, siren.id, south.id, stranger.id, gateway_record.id]
                by_id = {r["id"]: r for r in rows}
                assert by_id[loud.id]["zone"] == "north" and by_id[south.id]["zone"] == "south"
                assert by_id[loud.id]["signature"] == "verified" and by_id[loud.id]["key_source"] == "config"
                assert by_id[stranger.id]["signature"] == "unverified"
                assert by_id[loud.id]["enforceable"] and not by_id[siren.id]["enforceable"]
                assert by_id[siren.id]["suppressed"] and by_id[siren.id]["suppression"] == ["classified_siren",
                                                                                            "zone_active"]
                assert {r["state"] for r in rows} == {"candidate"}
                detail = (await http.get(f"/api/v1/noise/events/{loud.id}")).json()
                assert detail["record"] == json.loads(json.dumps(loud.to_data()))  # the signed record, whole
                assert [a["action"] for a in detail["audit"]] == ["received"] and detail["blockers"] == []
                # filters
                q = {"since": SINCE, "zone": "north", "min_level": 98.5}
                assert [r["id"] for r in (await http.get("/api/v1/noise/events", params=q)).json()] == [
                    siren.id, stranger.id]
                assert [r["id"] for r in (await http.get("/api/v1/noise/events", params={"gateway": "gw-n1"})).json()
                        ] == [october.id, loud.id, siren.id]
                r = await http.get("/api/v1/noise/events", params={"since": "yesterday-ish"})
                assert r.status_code == 400 and "24h" in r.json()["detail"]
                r = await http.get("/api/v1/noise/events", params={"zone": "atlantis"})
                assert r.status_code == 400
                r = await http.post(f"/api/v1/noise/events/{siren.id}/review",
                                    json={"action": "confirm", "note": "loud", "reviewer": "bob"})
                assert r.status_code == 409 and r.json()["error"] == "review_refused"
                assert "siren-suppressed" in r.json()["detail"]

            # review through the CLI (real processes against the hub): the reviewer is the token's user, in the
            # noise-reviewer role; a name on the command line is not an identity
            alice = add_user(hub.config.hub.state_dir, "alice", "noise-reviewer")
            viewer = add_user(hub.config.hub.state_dir, "vera", "viewer")
            rc, _, err = await dozor(hub, "noise", "review", loud.id, "--confirm", "--note", "x", token=viewer)
            assert rc == 1 and "(403)" in err and "needs noise-reviewer" in err, err
            rc, out, err = await dozor(hub, "noise", "review", loud.id, "--confirm", "--note", "plate AA 1234 KI",
                                       "--reviewer", "mallory", "--json", token=alice)
            assert rc == 0, err
            done = json.loads(out)
            assert done["state"] == "confirmed"
            assert [(a["who"], a["action"], a["previous"], a["state"], a["note"]) for a in done["audit"]] == [
                ("hub", "received", None, "candidate", "signature verified"),
                ("alice", "confirm", "candidate", "confirmed", "plate AA 1234 KI")]
            rc, out, err = await dozor(hub, "noise", "show", loud.id)
            assert rc == 0 and "alice: confirm -> confirmed (was candidate)" in out and "plate AA 1234 KI" in out, err
            assert "measured pass-by" in out and "1 approach/departure piece absorbed" in out, out
            rc, out, err = await dozor(hub, "noise", "show", stranger.id)
            assert rc == 0 and "measured pass-by" not in out, out
            (review,) = [r for r in hub.audit.records(subject=loud.id) if r.action == "noise.review"]
            assert review.actor == {"name": "alice", "role": "noise-reviewer", "via": "token"}
            assert review.details["declared_reviewer"] == "mallory" and review.details["state"] == "confirmed"
            rc, out, err = await dozor(hub, "noise", "show", stranger.id)
            assert rc == 0 and "cannot be confirmed" in out and "unknown key" in out, err
            rc, _, err = await dozor(hub, "noise", "review", loud.id, "--confirm", "--note", "again")
            assert rc == 1 and "already confirmed" in err
            for rec, why in ((siren, "siren-suppressed"), (stranger, "unverified"),
                             (gateway_record, "enforcement verdict is false")):
                rc, _, err = await dozor(hub, "noise", "review", rec.id, "--confirm", "--note", "try", "--reviewer", "bob")
                assert rc == 1 and "cannot be confirmed" in err and why in err, err
            rc, out, err = await dozor(hub, "noise", "review", siren.id, "--dismiss", "--note", "ambulance",
                                       "--reviewer", "bob")
            assert rc == 0 and "dismissed" in out, err
            rc, _, err = await dozor(hub, "noise", "review", stranger.id, "--dismiss", "--confirm", "--note", "x")
            assert rc == 2 and "exactly one" in err
            rc, _, err = await dozor(hub, "noise", "review", "no-such-event", "--dismiss", "--note", "x")
            assert rc == 1 and "no noise event" in err
            with sqlite3.connect(cfg.hub.state_dir / "violations.sqlite") as db, pytest.raises(sqlite3.DatabaseError,
                                                                                                match="append-only"):
                db.execute("UPDATE noise_audit SET who='mallory'")

            # listing, report and exports through the CLI
            rc, out, err = await dozor(hub, "noise", "events", "--since", SINCE, "--state", "confirmed", "--json")
            assert rc == 0 and [r["id"] for r in json.loads(out)] == [loud.id], err
            rc, out, err = await dozor(hub, "noise", "events", "--since", SINCE)
            assert rc == 0 and loud.id in out and "confirmed" in out and "unverified" in out, err
            rc, out, err = await dozor(hub, "noise", "report", "--month", "2026-11", "--json")
            assert rc == 0, err
            rep = json.loads(out)
            assert (rep["total"], rep["enforceable"], rep["suppressed"], rep["unverified"]) == (5, 3, 1, 1)
            assert rep["by_state"] == {"candidate": 3, "confirmed": 1, "dismissed": 1}
            assert rep["by_zone"] == {"north": {"candidate": 1, "confirmed": 1, "dismissed": 1},
                                      "south": {"candidate": 2}}
            assert rep["by_class"] == {"exhaust": {"candidate": 3, "confirmed": 1}, "siren": {"dismissed": 1}}
            assert [(s["gateway"], s["sensor"], s["events"], s["confirmed"]) for s in rep["top_sensors"]] == [
                ("gw-n1", "mic-1", 2, 1), ("gw-s1", "mic-7", 2, 0), ("gw-n2", "mic-1", 1, 0)]
            rc, out, err = await dozor(hub, "noise", "report", "--month", "2026-10", "--json")
            assert json.loads(out)["total"] == 1
            rc, _, err = await dozor(hub, "noise", "report", "--month", "2026-13")
            assert rc == 1 and "YYYY-MM" in err
            rc, out, err = await dozor(hub, "noise", "report", "--month", "2026-11")
            assert rc == 0 and "top sensors" in out, err

            csv_path = tmp_path / "events.csv"
            rc, _, err = await dozor(hub, "noise", "export", "--format", "csv", "--out", str(csv_path))
            assert rc == 0, err
            table = list(csv.DictReader(io.StringIO(csv_path.read_text())))
            assert sorted(r["id"] for r in table) == sorted(r.id for r in good)
            row = next(r for r in table if r["id"] == loud.id)
            assert (row["state"], row["zone"], float(row["lafmax_75"]), row["time_utc"]) == (
                "confirmed", "north", 98.2, "2026-11-20T10:00:00.000Z")
            assert next(r for r in table if r["id"] == siren.id)["suppression"] == "classified_siren+zone_active"
            rc, out, err = await dozor(hub, "noise", "export", "--format", "geojson", "--zone", "south",
                                       "--since", SINCE)
            assert rc == 0, err
            geo = json.loads(out)
            assert geo["type"] == "FeatureCollection"
            feats = {f["id"]: f for f in geo["features"]}
            assert set(feats) == {south.id, gateway_record.id}
            assert feats[south.id]["geometry"] is None
            assert feats[gateway_record.id]["geometry"] == {"type": "Point", "coordinates": [30.60, 50.40]}
            assert feats[gateway_record.id]["properties"]["class"] == "exhaust"
            rc, _, err = await dozor(hub, "noise", "export", "--format", "kml")
            assert rc == 2 and "csv or geojson" in err

            # the time-series store: one point per stored event, one more per review (state tag)
            await eventually(lambda: influx_count(influx1, "SELECT count(lafmax) FROM noise_event") == 8, 30,
                             "noise_event points in InfluxDB")
            assert influx_count(influx1, "SELECT count(lafmax_75) FROM noise_event WHERE \"state\"='confirmed' "
                                         "AND \"zone\"='north' AND \"class\"='exhaust'") == 1
            assert influx_count(influx1, "SELECT sum(enforceable) FROM noise_event WHERE \"state\"='candidate' "
                                         "AND \"gateway\"='gw-n1'") == 2  # loud and october
    finally:
        pub.close()
