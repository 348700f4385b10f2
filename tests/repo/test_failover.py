"""Two hub processes on one PostgreSQL: the second waits as a standby; the leader is killed with SIGKILL mid-alert
and the standby takes over within its lease, resumes the alert from the database and takes the acks the broker
queued for the hubs' shared session. A leader paused with SIGSTOP past its lease is fenced and exits."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from pathlib import Path

import httpx

from contract.command import public_key_from_b64
from contract.models import AckStage, DeviceKind
from hub.config import load_config
from hub.gwtrust import enroll
from hub.keys import KEY_FILE, RING_FILE
from simulators.brokers import free_port, wait_port
from tests.gwident import public_b64
from tests.hub.fakegw import FakeGateway
from tests.hub.helpers import eventually
from tests.repo.test_hub_postgres import alert_half_confirmed, start
from tests.repo.test_migrate import dozor, pg_section
from tests.tokens import record

ZONES = [{"id": "all", "name": "All", "gateways": ["gw-a", "gw-b"]}]


def hub_config(tmp: Path, name: str, port: int, broker_url: str, database: str, retries: int = 5,
               lease_s: float | None = 2) -> Path:
    """``lease_s`` None: the hub's default ``leader_lease_s``."""
    (tmp / "zones.json").write_text(json.dumps(ZONES))
    path = tmp / f"{name}.toml"
    lease = "" if lease_s is None else f"leader_lease_s = {lease_s:g}\n"
    path.write_text(f'[hub]\nstate_dir = "state-{name}"\nzones = "zones.json"\napi_port = {port}\n'
                    f'confirm_deadline_s = 1.0\nmax_retries = {retries}\nflush_interval_s = 0.05\n{lease}'
                    f'[mqtt]\nurl = "{broker_url}"\nclient_id = "hub-ha"\n' + database)
    return path


async def wait_text(path: Path, text: str, limit_s: float = 30.0) -> None:
    await eventually(lambda: path.exists() and text in path.read_text(), limit_s, what=f"{text!r} in {path.name}")


async def setup_pair(postgres_server, mosquitto, tmp_path, retries: int = 5, lease_s: float | None = 2):
    database = pg_section(postgres_server, postgres_server.database())
    ports = free_port(), free_port()
    a_cfg, b_cfg = (hub_config(tmp_path, n, p, mosquitto.url, database, retries, lease_s)
                    for n, p in zip("ab", ports, strict=True))
    assert dozor("hub", "migrate", "--config", str(a_cfg)).returncode == 0
    token = record(json.loads(dozor("users", "add", "boss", "--role", "admin", "--config", str(a_cfg),
                                    "--json").stdout)["token"])
    backend = load_config(a_cfg).backend()
    for gw in ("gw-a", "gw-b"):
        enroll(backend, gw, public_b64(gw), actor="test")
    a_log, b_log = tmp_path / "a.log", tmp_path / "b.log"
    a = start(a_cfg, a_log)
    wait_port(ports[0], timeout=30)
    (tmp_path / "state-b").mkdir()
    for name in (KEY_FILE, RING_FILE):  # the standby signs with the same hub key (gateways pin it)
        if (tmp_path / "state-a" / name).exists():
            shutil.copy2(tmp_path / "state-a" / name, tmp_path / "state-b" / name)
    b = start(b_cfg, b_log)
    await wait_text(b_log, "standby: hub")
    return a, b, a_log, b_log, ports, token



def kill_pair(procs, logs, fakes=()) -> None:
    """A test's teardown of its two hubs: stop the fake gateways, kill -9 what still runs, show the logs' tails."""
    for f in fakes:
        f.stop()
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    for log in logs:
        if log.exists():
            print(log.name, log.read_text()[-2000:])

async def test_standby_takes_over_a_killed_leader_mid_alert(postgres_server, mosquitto, tmp_path):
    a, b, a_log, b_log, (pa, pb), token = await setup_pair(postgres_server, mosquitto, tmp_path)
    fakes: list[FakeGateway] = []
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pa}", timeout=10, headers=headers) as http:
            health = (await http.get("/healthz")).json()
            keys = {health["kid"]: public_key_from_b64(health["public_key"])}
            fakes = [FakeGateway(mosquitto.port, "gw-a", keys, [("siren-1", DeviceKind.SIREN)]).start(),
                     FakeGateway(mosquitto.port, "gw-b", keys, [("siren-1", DeviceKind.SIREN)],
                                 behaviour="silent").start()]
            gw_a, gw_b = fakes
            alert_id = await alert_half_confirmed(http, gw_b)
        a.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        a.wait(10)
        first = gw_b.commands_for(alert_id)[0]  # acked while no hub leads: the broker queues it for the session
        gw_b._ack(first.jti, alert_id, AckStage.ACCEPTED, ("siren-1",))
        gw_b._ack(first.jti, alert_id, AckStage.SOUNDING, ("siren-1",))
        await wait_text(b_log, "leads (lease term 2)")
        wait_port(pb, timeout=30)
        print(f"takeover after {time.monotonic() - killed:.2f} s (lease 2 s; loaded machine)")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{pb}", timeout=10, headers=headers) as http:
            detail = None
            for _ in range(1000):
                detail = (await http.get(f"/api/v1/alerts/{alert_id}")).json()
                if detail.get("summary", {}).get("confirmed") == 2:
                    break
                await asyncio.sleep(0.05)
            assert detail["summary"]["confirmed"] == 2, json.dumps(detail)[:600]
            assert {d["gateway"]: d["state"] for d in detail["devices"]} == {"gw-a": "sounding", "gw-b": "sounding"}
        jtis = [c.jti for c in gw_a.commands_for(alert_id) + gw_b.commands_for(alert_id)]
        assert len(jtis) == len(set(jtis))  # no command id was sent twice
        b.terminate()
        assert b.wait(20) == 0
    finally:
        kill_pair((a, b), (a_log, b_log), fakes)


async def test_a_paused_leader_is_fenced_and_exits(postgres_server, mosquitto, tmp_path):
    """With the default lease (``[hub] leader_lease_s`` 3 s): what a deployment runs."""
    a, b, a_log, b_log, (pa, pb), _ = await setup_pair(postgres_server, mosquitto, tmp_path, lease_s=None)
    assert "leader_lease_s" not in (tmp_path / "a.toml").read_text()
    try:
        a.send_signal(signal.SIGSTOP)
        await wait_text(b_log, "leads (lease term 2)")
        wait_port(pb, timeout=30)
        a.send_signal(signal.SIGCONT)
        assert await asyncio.to_thread(a.wait, 30) == 2  # it noticed, sent nothing more and stopped
        assert "lost the state database lease" in a_log.read_text()
        assert b.poll() is None
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
        kill_pair((a, b), (a_log, b_log))
