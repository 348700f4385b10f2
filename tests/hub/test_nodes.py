"""The hub's field-node registry: provisioning records, what gateways report, "out of date", persistence, and
the /api/v1/nodes endpoints (auth, validation) on the hub's real app over ASGI."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from contract.codecs import node_frame as nf
from contract.models import DeviceInfo, DeviceKind, DeviceState, DeviceStatus, GatewayState, Heartbeat
from hub.app import Hub
from hub.config import parse_config
from hub.models import NodeRegistration
from hub.nodes import NodeRegistry, firmware_source_version
from tests.hub.helpers import hub_token, make_config

KEY_SHA = "ab" * 32


def reg(node_id: str, fw: str, **kw) -> NodeRegistration:
    return NodeRegistration(id=node_id, kind=kw.pop("kind", "noise"), zone="Z1", fw=fw, key_sha256=KEY_SHA, **kw)


def birth(*devices: DeviceInfo, session: int = 1) -> GatewayState:
    return GatewayState(gateway="gw-1", state="online", session=session, ts=1.0, devices=devices)


def beat(*devices: DeviceStatus) -> Heartbeat:
    return Heartbeat(gateway="gw-1", session=1, seq=0, ts=1.0, uptime_s=1.0, devices=devices)


def test_registration_reports_and_outdated(tmp_path):
    db = sqlite3.connect(tmp_path / "hub.sqlite", isolation_level=None)
    nodes = NodeRegistry(db, "1.1.0", clock=lambda: 1000.0)
    nodes.register(reg("N-OLD", "1.0.0", lat=50.45, lon=30.52, provisioned_by="tech@laptop"))
    nodes.register(reg("N-NEW", "1.1.0"))
    nodes.register(reg("N-AIR", "0.9", kind="air"))
    kinds = {"N-OLD": DeviceKind.NOISE_NODE, "N-NEW": DeviceKind.NOISE_NODE, "N-ROGUE": DeviceKind.NOISE_NODE,
             "siren-1": DeviceKind.SIREN}
    nodes.on_birth(birth(*(DeviceInfo(id=k, kind=v) for k, v in kinds.items())))
    status = nf.NodeStatus(0, 1, 1, 7, 0.0, 0, 4)  # N-OLD was reflashed to 1.1 by other means
    nodes.on_heartbeat(beat(
        DeviceStatus(id="N-OLD", state=DeviceState.FAULT, detail=status.detail()),
        DeviceStatus(id="N-NEW", state=DeviceState.UNREACHABLE, detail="no data for 9s; last fw 1.1 boots 2 errors 0x0000"),
        DeviceStatus(id="N-ROGUE", state=DeviceState.IDLE, detail="fw 0.8 boots 1 errors 0x0000"),
        DeviceStatus(id="siren-1", state=DeviceState.IDLE, detail="fw 0.1 boots 1 errors 0x0000"),
    ), kinds)
    by_id = {n.id: n for n in nodes.list()}
    assert set(by_id) == {"N-OLD", "N-NEW", "N-AIR", "N-ROGUE"}  # sirens are not field nodes
    old = by_id["N-OLD"]
    assert (old.fw, old.reported_fw, old.running_fw, old.boot_count, old.error_bits, old.state, old.gateway) == (
        "1.0.0", "1.1", "1.1", 7, 4, "fault", "gw-1")
    assert (old.lat, old.lon, old.provisioned_by, old.key_sha256, old.last_seen) == (
        50.45, 30.52, "tech@laptop", KEY_SHA, 1000.0)
    new = by_id["N-NEW"]
    assert (new.running_fw, new.outdated, new.boot_count) == ("1.1.0", False, 2)  # same major.minor: the full one
    assert by_id["N-ROGUE"].provisioned_at is None and by_id["N-ROGUE"].outdated is True
    assert by_id["N-AIR"].reported_fw is None and by_id["N-AIR"].outdated is True
    assert old.outdated is False  # 1.1 against 1.1.0: STATUS cannot tell patch versions apart
    assert [n.id for n in nodes.list(outdated=True)] == ["N-AIR", "N-ROGUE"]
    db.close()
    # everything survives a hub restart; a damaged row is skipped and counted
    db = sqlite3.connect(tmp_path / "hub.sqlite", isolation_level=None)
    db.execute("INSERT INTO nodes VALUES ('N-BAD', '{not json')")
    errors: list[int] = []
    again = NodeRegistry(db, "1.1.0", on_error=lambda: errors.append(1))
    assert {n.id: n.model_dump() for n in again.list()} == {k: v.model_dump() for k, v in by_id.items()}
    assert errors == [1]


def test_no_current_version_means_unknown_and_source_version_is_read(tmp_path):
    nodes = NodeRegistry(sqlite3.connect(":memory:"), None)
    nodes.register(reg("N-1", "0.1"))
    assert nodes.list()[0].outdated is None and nodes.list(outdated=True) == []
    (tmp_path / "version.py").write_text('# comment\nVERSION = "2.3.4"\nMAJOR = 2\n')
    assert firmware_source_version(tmp_path / "version.py") == "2.3.4"
    assert firmware_source_version(tmp_path / "missing.py") is None
    assert nf.parse_status_detail("port closed") is None and nf.parse_status_detail(None) is None


@pytest.fixture
def hub(tmp_path):
    cfg = make_config(tmp_path, 1)  # nothing connects: the API is driven in-process
    data = {"hub": {"state_dir": str(cfg.hub.state_dir), "zones": str(cfg.hub.zones)},
            "firmware": {"current_version": "1.0"}}
    h = Hub(parse_config(data, base=tmp_path))
    yield h
    h.store.close()


async def test_nodes_api_auth_validation_and_filter(hub):
    transport = httpx.ASGITransport(app=hub.app)
    auth = {"Authorization": f"Bearer {hub_token(hub)}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        r = await http.post("/api/v1/nodes", json=reg("N-1", "0.9").model_dump())
        assert r.status_code == 401
        r = await http.post("/api/v1/nodes", headers=auth, json={**reg("N-1", "0.9").model_dump(),
                                                                 "key_sha256": "not-a-hash", "lat": 123})
        assert r.status_code == 422 and "key_sha256" in r.json()["detail"] and "lat" in r.json()["detail"]
        r = await http.post("/api/v1/nodes", headers=auth, json={"id": "N-1", "kind": "noise", "zone": "Z1",
                                                                 "fw": "1.0", "key": "00" * 32})
        assert r.status_code == 422 and "key: unknown field" in r.json()["detail"]  # never the key itself
        for node_id, fw in (("N-1", "0.9"), ("N-2", "1.0.3")):
            r = await http.post("/api/v1/nodes", headers=auth, json=reg(node_id, fw).model_dump(exclude_none=True))
            assert r.status_code == 200 and r.json()["provisioned_at"] is not None
        r = await http.get("/api/v1/nodes", headers=auth, params={"outdated": "true"})
        assert [n["id"] for n in r.json()] == ["N-1"] and r.json()[0]["current_version"] == "1.0"
        r = await http.get("/api/v1/nodes", headers=auth)
        assert [(n["id"], n["outdated"]) for n in r.json()] == [("N-1", True), ("N-2", False)]
        assert (await http.get("/api/v1/nodes")).status_code == 401
