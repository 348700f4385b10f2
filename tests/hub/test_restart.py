"""A hub killed with SIGKILL mid-alert and restarted on the same state_dir resumes tracking and finishes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import paho.mqtt.client as paho

from contract import topics
from contract.command import public_key_from_b64
from contract.models import AckStage, DeviceKind, HubState
from simulators.brokers import wait_port
from tests.gwident import enroll
from tests.hub.fakegw import FakeGateway
from tests.hub.helpers import eventually, make_config, write_toml
from tests.tokens import admin_token

ROOT = Path(__file__).resolve().parents[2]


def start_hub(config: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "hub", "--config", str(config)], cwd=ROOT, stdout=fh,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


class HubStateWatch:
    def __init__(self, port: int) -> None:
        self.states: list[str] = []
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.c.on_message = lambda c, u, m: self.states.append(HubState.model_validate_json(m.payload).state)
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(topics.HUB_STATE, qos=1)
        self.c.loop_start()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


async def test_hub_killed_mid_alert_resumes_and_finishes(mosquitto, tmp_path):
    cfg = make_config(tmp_path, mosquitto.port, confirm_deadline_s=1.0, max_retries=3, client_id="hub-restart")
    toml = write_toml(tmp_path, cfg)
    log = tmp_path / "hub.log"
    token = admin_token(cfg.hub.state_dir)
    proc = start_hub(toml, log)
    watch = HubStateWatch(mosquitto.port)
    fakes: list[FakeGateway] = []
    try:
        wait_port(cfg.hub.api_port, timeout=20)
        state_dir = cfg.hub.state_dir
        seed_mode = (state_dir / "hub-signing-key").stat().st_mode & 0o777
        assert seed_mode == 0o600 and (state_dir / "users.sqlite").stat().st_mode & 0o777 == 0o600
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cfg.hub.api_port}", timeout=10,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            health = (await http.get("/healthz")).json()
            # the gateways pin the hub's key from its (public) announcement, as `dozor hub pubkey` prints it
            keys = {health["kid"]: public_key_from_b64(health["public_key"])}
            for gw in ("gw-a", "gw-b", "gw-c"):  # their identity keys, enrolled as `dozor gateways enroll` does
                enroll(gw, [state_dir])
            fakes = [FakeGateway(mosquitto.port, "gw-a", keys, [("siren-1", DeviceKind.SIREN)]).start(),
                     FakeGateway(mosquitto.port, "gw-b", keys, [("siren-1", DeviceKind.SIREN)], behaviour="silent").start(),
                     FakeGateway(mosquitto.port, "gw-c", keys, [("siren-1", DeviceKind.SIREN)], behaviour="silent").start()]
            a, b, c = fakes

            async def online():
                gws = (await http.get("/api/v1/gateways")).json()
                return sum(g["state"] == "online" for g in gws) == 3
            for _ in range(500):
                if await online():
                    break
                await _sleep()
            r = await http.post("/api/v1/alerts", json={"zones": ["all"], "signal": "air-raid", "mode": "exercise",
                                                        "duration_s": 300})
            assert r.status_code == 201, r.text
            alert_id = r.json()["id"]
            await eventually(lambda: b.commands_for(alert_id) and c.commands_for(alert_id), what="commands")
            await eventually(lambda: any(k.stage is AckStage.SOUNDING for k in a.acks), what="gw-a sounding")
            for _ in range(500):  # an ack the hub took from the socket but had not handled is lost with it
                detail = (await http.get(f"/api/v1/alerts/{alert_id}")).json()
                if detail["summary"]["confirmed"] == 1:
                    break
                await _sleep()

        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        await eventually(lambda: "offline" in watch.states, what="hub last-will")
        # while the hub is dead, gw-b answers the command it already had; the broker keeps the acks for the
        # hub's persistent session, and only SQLite can tell the restarted hub what that jti was
        first = b.commands_for(alert_id)[0]
        b._ack(first.jti, alert_id, AckStage.ACCEPTED, ("siren-1",))
        b._ack(first.jti, alert_id, AckStage.SOUNDING, ("siren-1",))
        sent_to_c_before = len(c.commands_for(alert_id))

        proc = start_hub(toml, log)
        wait_port(cfg.hub.api_port, timeout=20)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cfg.hub.api_port}", timeout=10,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            detail = None
            for _ in range(1000):
                detail = (await http.get(f"/api/v1/alerts/{alert_id}")).json()
                if not detail["tracking"]:
                    break
                await _sleep()
            assert detail is not None and not detail["tracking"], json.dumps(detail)[:500]
            dev = {d["gateway"]: d for d in detail["devices"]}
            assert dev["gw-a"]["state"] == "sounding"
            assert dev["gw-b"]["state"] == "sounding"  # matched from the persisted jti
            assert dev["gw-c"]["state"] == "unreachable" and dev["gw-c"]["reason"] == "no_ack"
            assert detail["summary"]["confirmed"] == 2 and detail["summary"]["unreachable"] == 1
            c_cmds = c.commands_for(alert_id)
            assert len(c_cmds) > sent_to_c_before  # the restarted hub kept retrying
            assert len(c_cmds) >= 1 + cfg.hub.max_retries
            assert len({k.jti for k in c_cmds}) == len(c_cmds)
            assert watch.states[-1] == "online"
        # SIGTERM: a clean shutdown (offline announced, state flushed), exit code 0
        proc.terminate()
        assert proc.wait(15) == 0
        await eventually(lambda: watch.states[-1] == "offline", what="offline on shutdown")
        assert "hub stopped" in log.read_text()
    finally:
        for f in fakes:
            f.stop()
        watch.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if log.exists():
            print(log.read_text()[-3000:])  # shown by pytest when the test fails


async def _sleep() -> None:
    await asyncio.sleep(0.05)
