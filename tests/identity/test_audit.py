"""The audit chain on a real history (a `dozor hub run` process, real Mosquitto, a gateway, users, alerts):
`dozor audit verify` passes, names the first bad record after a row is edited, removed or reordered directly in
the database, and catches a truncated chain from the head signed on MQTT; an export verifies offline with the
public key alone and fails when edited or checked with another key."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3

import httpx
import pytest

from contract.command import public_key_from_b64
from contract.models import DeviceKind
from hub.audit import canonical
from simulators.brokers import free_port
from tests.gwident import enroll
from tests.hub.fakegw import FakeGateway
from tests.identity.helpers import cli, hub_process
from tests.tokens import record

pytestmark = pytest.mark.integration


async def metric(port: int, token: str, name: str) -> float | None:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"})).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@pytest.fixture
async def history(mosquitto, tmp_path, token_leak_scanner):
    """A deployment with a real history: users, an exercise alert started and all-cleared by an operator."""
    port = free_port()
    zones = tmp_path / "zones.json"
    zones.write_text(json.dumps([{"id": "centre", "gateways": ["gw-1"]}]))
    deploy = tmp_path / "city"
    rc, out, err = await cli("hub", "init", str(deploy), "--broker", mosquitto.url, "--listen", f"127.0.0.1:{port}",
                             "--zones", str(zones), scanner=token_leak_scanner)
    assert rc == 0, err
    admin = record(out.strip())
    config = deploy / "hub.toml"
    config.write_text(config.read_text().replace("[hub]\n", "[hub]\naudit_anchor_interval_s = 0.3\n", 1))
    rc, out, _ = await cli("users", "add", "alice", "--role", "operator", "--config", str(config),
                           scanner=token_leak_scanner)
    alice = record(out.strip())
    rc, out, _ = await cli("hub", "pubkey", "--config", str(config), "--json")
    keys = json.loads(out)
    enroll("gw-1", [deploy / "state"])  # the hub acts only on enrolled gateways
    gw = FakeGateway(mosquitto.port, "gw-1", {keys["kid"]: public_key_from_b64(keys["public_key"])},
                     [("siren-1", DeviceKind.SIREN)])
    base = f"http://127.0.0.1:{port}"
    async with hub_process(config, port, tmp_path / "hub.log", scanner=token_leak_scanner):
        gw.start()
        try:
            auth = {"Authorization": f"Bearer {alice}"}
            async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as http:
                for _ in range(200):
                    if [g for g in (await http.get("/api/v1/gateways")).json() if g["state"] == "online"]:
                        break
                    await asyncio.sleep(0.05)
                r = await http.post("/api/v1/alerts", json={"zones": ["centre"], "signal": "test", "mode": "exercise",
                                                            "duration_s": 60})
                assert r.status_code == 201, r.text
                alert_id = r.json()["id"]
                for _ in range(200):
                    if (await http.get(f"/api/v1/alerts/{alert_id}")).json()["summary"]["confirmed"] == 1:
                        break
                    await asyncio.sleep(0.05)
                assert (await http.post(f"/api/v1/alerts/{alert_id}/all-clear")).status_code == 200
                head = (await http.get("/api/v1/audit")).json()[-1]["seq"]
            # the hub signs the head and publishes it (metric and retained MQTT message)
            for _ in range(200):
                if await metric(port, admin, "dozor_hub_audit_head_seq") == head:
                    break
                await asyncio.sleep(0.05)
            assert await metric(port, admin, "dozor_hub_audit_head_seq") == head
            rc, out, err = await cli("audit", "log", "--alert", alert_id, "--hub", base, "--token", alice,
                                     scanner=token_leak_scanner)
            assert rc == 0, err
            lines = out.splitlines()
            assert "alice (operator)" in lines[0] and "alert.start" in lines[0] and "signal=test" in lines[0]
            assert any("alert.all_clear" in line for line in lines)
            rc, out, _ = await cli("audit", "log", "--actor", "alice", "--hub", base, "--token", alice, "--json")
            assert {r["action"] for r in json.loads(out)} == {"alert.start", "alert.all_clear"}
        finally:
            gw.stop()
    return {"config": config, "deploy": deploy, "keys": keys, "alert": alert_id, "broker": mosquitto.url,
            "head": head}


def tamper(state, sql: str, *args) -> None:
    db = sqlite3.connect(state / "audit.sqlite")
    with db:
        for statement in sql.split(";"):
            db.execute(statement, args)
    db.close()


async def test_verify_catches_edit_delete_reorder_and_truncation(history, tmp_path, token_leak_scanner):
    config, deploy = history["config"], history["deploy"]
    rc, out, err = await cli("audit", "verify", "--config", str(config), "--broker", history["broker"], "--json",
                             scanner=token_leak_scanner)
    assert rc == 0, out + err
    verdict = json.loads(out)
    assert verdict["ok"] and verdict["records"] == history["head"] and verdict["signed_to_seq"] == history["head"]
    rc, out, _ = await cli("audit", "verify", "--config", str(config))
    assert rc == 0 and "intact" in out
    pristine = tmp_path / "pristine"
    shutil.copytree(deploy / "state", pristine)

    def restore() -> None:
        shutil.rmtree(deploy / "state")
        shutil.copytree(pristine, deploy / "state")

    state = deploy / "state"
    cases = [
        ("edited", "UPDATE audit_chain SET details = '{\"role\":\"admin\"}' WHERE seq = 3", (), 3, "edited"),
        ("deleted", "DELETE FROM audit_chain WHERE seq = 4", (), 4, "missing"),
        ("reordered", "UPDATE audit_chain SET seq = -2 WHERE seq = 2; UPDATE audit_chain SET seq = 2 WHERE seq = 3; "
                      "UPDATE audit_chain SET seq = 3 WHERE seq = -2", (), 2, "record 2"),
    ]
    for name, sql, args, bad, words in cases:
        tamper(state, sql, *args)
        rc, out, _ = await cli("audit", "verify", "--config", str(config), "--json")
        verdict = json.loads(out)
        assert rc == 1 and verdict["first_bad_seq"] == bad and words in verdict["problem"], (name, verdict)
        rc, out, _ = await cli("audit", "verify", "--config", str(config))
        assert rc == 1 and f"BROKEN at record {bad}" in out, (name, out)
        restore()
    # an edit that recomputes the row's own hash still breaks the link to the next record
    db = sqlite3.connect(state / "audit.sqlite")
    row = db.execute("SELECT seq, ts, actor, action, subject, details, prev_hash FROM audit_chain WHERE seq = 2").fetchone()
    body = {"seq": row[0], "ts": row[1], "actor": json.loads(row[2]) if row[2] else None, "action": row[3],
            "subject": "mallory", "details": json.loads(row[5]), "prev_hash": row[6]}
    import hashlib

    with db:
        db.execute("UPDATE audit_chain SET subject = 'mallory', hash = ? WHERE seq = 2",
                   (hashlib.sha256(canonical(body)).hexdigest(),))
    db.close()
    rc, out, _ = await cli("audit", "verify", "--config", str(config), "--json")
    assert rc == 1 and json.loads(out)["first_bad_seq"] == 3 and "does not link" in json.loads(out)["problem"]
    restore()
    # truncation with the local anchors wiped too: only the head retained on MQTT tells
    tamper(state, f"DELETE FROM audit_chain WHERE seq >= {history['head'] - 1}")
    tamper(state, "DELETE FROM audit_anchors")
    rc, out, _ = await cli("audit", "verify", "--config", str(config), "--json")
    assert rc == 0  # on its own disk, a consistently truncated chain looks fine...
    rc, out, _ = await cli("audit", "verify", "--config", str(config), "--broker", history["broker"], "--json")
    verdict = json.loads(out)
    assert rc == 1 and "removed from the end" in verdict["problem"]  # ...the head signed outside does not
    assert verdict["first_bad_seq"] == history["head"] - 1


async def test_export_verifies_offline_with_the_public_key_alone(history, tmp_path, token_leak_scanner):
    config, keys = history["config"], history["keys"]
    export = tmp_path / "audit.jsonl"
    rc, _, err = await cli("audit", "export", "--config", str(config), "--since", "1h", "--out", str(export),
                           scanner=token_leak_scanner)
    assert rc == 0, err
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert lines[0]["type"] == "dozor-audit-export" and lines[0]["public_key"] == keys["public_key"]
    assert [d["seq"] for d in lines if d["type"] == "record"] == list(range(1, history["head"] + 1))
    assert any(d["type"] == "anchor" for d in lines)
    offline = tmp_path / "auditor"  # nothing of the hub: the file and the key
    offline.mkdir()
    copy = offline / "audit.jsonl"
    shutil.copy(export, copy)
    rc, out, err = await cli("audit", "verify-export", str(copy), "--public-key", keys["public_key"])
    assert rc == 0 and "intact" in out, out + err
    # another key: refused
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from contract.command import b64url, public_raw

    other = b64url(public_raw(Ed25519PrivateKey.generate().public_key()))
    rc, out, _ = await cli("audit", "verify-export", str(copy), "--public-key", other, "--json")
    assert rc == 1 and "unknown key" in json.loads(out)["problem"]
    # an edited line: refused, naming the record
    edited = [json.loads(line) for line in copy.read_text().splitlines()]
    target = next(d for d in edited if d["type"] == "record" and d["action"] == "alert.start")
    target["details"]["request"]["mode"] = "actual"
    copy.write_text("".join(json.dumps(d) + "\n" for d in edited))
    rc, out, _ = await cli("audit", "verify-export", str(copy), "--public-key", keys["public_key"], "--json")
    assert rc == 1 and json.loads(out)["first_bad_seq"] == target["seq"]
    # not an export at all
    (offline / "junk.jsonl").write_text("hello\n")
    rc, _, err = await cli("audit", "verify-export", str(offline / "junk.jsonl"), "--public-key", keys["public_key"])
    assert rc == 1 and "not a valid export line" in err
