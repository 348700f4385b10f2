"""A real hub process on PostgreSQL: migrated with `dozor hub migrate`, users added with `dozor users add`, killed
with SIGKILL mid-alert and restarted; it resumes the alert from the database (no SQLite file holds hub state),
the audit chain verifies, and the database password is nowhere in its log."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess

import httpx

from contract.command import public_key_from_b64
from contract.models import AckStage, DeviceKind
from hub.config import load_config
from hub.gwtrust import enroll
from simulators.brokers import wait_port
from tests.gwident import public_b64
from tests.hub.fakegw import FakeGateway
from tests.hub.helpers import eventually
from tests.identity.helpers import DOZOR
from tests.repo.test_migrate import dozor, pg_section
from tests.tokens import record

ZONES = [{"id": "all", "name": "All", "gateways": ["gw-a", "gw-b"]}]


def start(config, log) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen([DOZOR, "hub", "run", "--config", str(config)], stdout=fh, stderr=subprocess.STDOUT)


async def test_hub_on_postgres_killed_mid_alert_resumes_from_the_database(postgres_server, mosquitto, tmp_path):
    from simulators.brokers import free_port

    port = free_port()
    (tmp_path / "zones.json").write_text(json.dumps(ZONES))
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\nstate_dir = "state"\nzones = "zones.json"\napi_port = {port}\nconfirm_deadline_s = 1.0\n'
                      f'max_retries = 3\nflush_interval_s = 0.05\n[mqtt]\nurl = "{mosquitto.url}"\n'
                      f'client_id = "hub-pg"\n' + pg_section(postgres_server, postgres_server.database()))
    assert dozor("hub", "migrate", "--config", str(config)).returncode == 0
    r = dozor("users", "add", "boss", "--role", "admin", "--config", str(config), "--json")
    token = record(json.loads(r.stdout)["token"])
    backend = load_config(config).backend()
    for gw in ("gw-a", "gw-b"):  # as `dozor gateways enroll` does, into PostgreSQL
        enroll(backend, gw, public_b64(gw), actor="test")
    log = tmp_path / "hub.log"
    proc = start(config, log)
    fakes: list[FakeGateway] = []
    headers = {"Authorization": f"Bearer {token}"}
    try:
        wait_port(port, timeout=30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, headers=headers) as http:
            health = (await http.get("/healthz")).json()
            keys = {health["kid"]: public_key_from_b64(health["public_key"])}
            fakes = [FakeGateway(mosquitto.port, "gw-a", keys, [("siren-1", DeviceKind.SIREN)]).start(),
                     FakeGateway(mosquitto.port, "gw-b", keys, [("siren-1", DeviceKind.SIREN)],
                                 behaviour="silent").start()]
            a, b = fakes

            alert_id = await alert_half_confirmed(http, b)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        first = b.commands_for(alert_id)[0]  # acked while the hub is dead: only the database knows that jti
        b._ack(first.jti, alert_id, AckStage.ACCEPTED, ("siren-1",))
        b._ack(first.jti, alert_id, AckStage.SOUNDING, ("siren-1",))
        proc = start(config, log)
        wait_port(port, timeout=30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, headers=headers) as http:
            detail = None
            for _ in range(1000):
                detail = (await http.get(f"/api/v1/alerts/{alert_id}")).json()
                if detail["summary"]["confirmed"] == 2:
                    break
                await asyncio.sleep(0.05)
            assert detail is not None and detail["summary"]["confirmed"] == 2, json.dumps(detail)[:500]
            assert {d["gateway"]: d["state"] for d in detail["devices"]} == {"gw-a": "sounding", "gw-b": "sounding"}
        proc.terminate()
        assert proc.wait(20) == 0
        state = tmp_path / "state"
        assert {p.name for p in state.glob("*.sqlite")} <= {"spool.sqlite"}  # the ingest spool stays local
        r = dozor("audit", "verify", "--config", str(config), "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stdout
        text = log.read_text()
        assert "hub state: postgres at postgresql://dozor@127.0.0.1" in text
        assert postgres_server.password not in text
    finally:
        for f in fakes:
            f.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if log.exists():
            print(log.read_text()[-3000:])


async def until(check, what: str, limit_s: float = 30.0) -> None:
    """Poll an async check until it holds; the limit only bounds a failing test."""
    for _ in range(int(limit_s / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def alert_half_confirmed(http: httpx.AsyncClient, silent: FakeGateway) -> str:
    """Two gateways online, an exercise alert to both: the answering one confirmed, the ``silent`` one holding
    its command unacked (what a hub killed now must resume from the database). Returns the alert id."""
    async def online() -> bool:
        return sum(g["state"] == "online" for g in (await http.get("/api/v1/gateways")).json()) == 2

    await until(online, "both gateways online")
    r = await http.post("/api/v1/alerts", json={"zones": ["all"], "signal": "air-raid", "mode": "exercise",
                                                "duration_s": 300})
    assert r.status_code == 201, r.text
    alert_id = r.json()["id"]
    await eventually(lambda: silent.commands_for(alert_id), what=f"command to {silent.id}")

    async def confirmed() -> bool:
        return (await http.get(f"/api/v1/alerts/{alert_id}")).json()["summary"]["confirmed"] == 1

    await until(confirmed, "the answering gateway confirmed")
    return alert_id
