"""Evidence keys announced in gateway births (GatewayState.evidence_key, over real MQTT), remembered across a hub
restart; records kept unverified before the key was known are verified then (or stay unverified if forged); a
redelivered event after the restart is still stored once. Plus the pure helpers (time filters, months, CSV)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import topics
from contract.models import GatewayState
from hub.violations.export import BadFilter, month_range, parse_time, to_csv
from hub.violations.service import ReviewRefused
from tests.hub.helpers import eventually
from tests.ingest.helpers import Publisher, store_config
from tests.ingest.test_hub_ingest import hub_running
from tests.violations.helpers import NOV, enroll_gateways, event_msg, pub_b64, record, sealed

KEY, KEY_N2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()


@pytest.mark.integration
async def test_announced_key_verifies_and_survives_restart(mosquitto, tmp_path):
    cfg = store_config(tmp_path, mosquitto.port, None)
    before = record("gw-n1", NOV, 99.0, key=KEY)
    forged = record("gw-n1", NOV + 30, 90.0, key=KEY).to_data()
    forged["levels"]["lafmax_7p5"] = 99.0  # changed after signing, sent before the hub knows the key
    after = record("gw-n1", NOV + 60, 99.0, key=KEY)
    later = record("gw-n1", NOV + 120, 99.0, key=KEY)
    # a gateway bug: suppressed by the zone state yet marked enforceable; the hub still refuses to confirm it
    buggy = record("gw-n1", NOV + 180, 99.0, suppression=("zone_active",), enforcement=True, key=KEY)
    other = record("gw-n2", NOV + 10, 99.0, key=KEY_N2)  # gw-n2 announces nothing; its key is pinned later
    pub = Publisher(mosquitto.port)
    try:
        async with hub_running(cfg) as hub:
            enroll_gateways(cfg.hub.state_dir, "gw-n1", "gw-n2")
            await asyncio.to_thread(pub.publish_all, [event_msg(before), event_msg(forged), event_msg(other)])
            await eventually(lambda: hub.violations.counters["stored_unverified"] == 3, what="unverified")
            birth = GatewayState(gateway="gw-n1", state="online", session=1, ts=NOV, evidence_key=pub_b64(KEY))
            await asyncio.to_thread(pub.publish_all, [(topics.gw("gw-n1", "state"), sealed("gw-n1", birth))])
            await eventually(lambda: hub.violations.counters["reverified"] == 1, what="re-verified after the birth")
            assert hub.violations.counters["reverify_bad_signature"] == 1
            row = hub.violations.get(before.id)
            assert (row["signature"], row["key_source"]) == ("verified", "birth")
            assert [(a["who"], a["action"]) for a in row["audit"]] == [("hub", "received"), ("hub", "verified")]
            assert hub.violations.get(forged["id"])["signature"] == "unverified"
            await asyncio.to_thread(pub.publish_all, [event_msg(after)])
            await eventually(lambda: hub.violations.counters["stored_verified"] == 1, what="verified")
            assert hub.violations.get(after.id)["key_source"] == "birth"
        pinned = cfg.model_copy(update={"noise": cfg.noise.model_copy(update={
            "gateway_keys": {"gw-n2": (pub_b64(KEY_N2),)}})})
        async with hub_running(pinned) as hub:  # restarted: the key is remembered, the register dedups redelivery
            assert hub.violations.counters["reverified"] == 1  # gw-n2's record, with the key pinned in the config
            assert hub.violations.get(other.id)["key_source"] == "config"
            await asyncio.to_thread(pub.publish_all, [event_msg(after), event_msg(later), event_msg(buggy),
                                                      event_msg(later, event_id="same-record-other-event-id")])
            await eventually(lambda: sum(hub.violations.counters.values()) == 5, what="four events handled")
            assert dict(hub.violations.counters) == {"reverified": 1, "duplicate": 2, "stored_verified": 2}
            assert [r["id"] for r in hub.violations.list(_all())] == [before.id, other.id, forged["id"], after.id,
                                                                      later.id, buggy.id]
            with pytest.raises(ReviewRefused, match="siren-suppressed"):
                hub.violations.review(buggy.id, "confirm", "loud", "carol")
            assert hub.violations.review(later.id, "confirm", "loud", "carol")["state"] == "confirmed"
    finally:
        pub.close()


def _all():
    from hub.violations.register import Filters

    return Filters()


def test_time_filters_and_months():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()
    assert parse_time("24h", "since", now=now) == now - 86400
    assert parse_time("90m", "since", now=now) == now - 5400
    assert parse_time("1795000000", "since") == 1795000000.0
    assert parse_time("2026-11-20", "since") == datetime(2026, 11, 20, tzinfo=UTC).timestamp()
    assert parse_time("2026-11-20T12:00+02:00", "since") == datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp()
    assert parse_time(None, "since") is None
    with pytest.raises(BadFilter, match="24h"):
        parse_time("last tuesday", "since")
    assert month_range("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC).timestamp(),
                                      datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    for bad in ("2026-13", "2026-1", "nov"):
        with pytest.raises(BadFilter, match="YYYY-MM"):
            month_range(bad)


def test_csv_cells_never_become_formulas():
    row = {"id": "=HYPERLINK(\"x\")", "start": NOV, "suppression": ["a", "b"], "suppressed": True, "lat": None}
    text = to_csv([row])
    assert "'=HYPERLINK" in text and "a+b" in text and "true" in text
