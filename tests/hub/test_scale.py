"""250 gateways / 1,000 sirens through the real broker: one verified command per gateway, full coverage.

Counts only (speed is measured in bench/): every gateway gets exactly one command naming exactly its
sirens, every siren is confirmed, and nothing needed a retry.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as paho

from contract import topics
from contract.command import verify_command
from contract.models import Ack, AckStage, DeviceInfo, DeviceKind, GatewayState
from tests.gwident import Sealer, enroll
from tests.hub.helpers import api, eventually, hub_token, make_config, running_hub

N_GW, PER_GW = 250, 4


class Fleet:
    """One MQTT client playing 250 gateways: births, and verified commands answered accepted + sounding."""

    def __init__(self, port: int, keys) -> None:
        self.keys = keys
        self.sealers: dict[str, Sealer] = {}  # each gateway signs with its own enrolled identity key
        self.commands: dict[str, list] = {}
        self.lock = threading.Lock()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="fleet", protocol=paho.MQTTv311)
        self.c.max_inflight_messages_set(0)
        self.c.on_message = self._on_command
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe(f"{topics.ROOT}/gw/+/cmd", qos=1)

    def birth(self, n: int, per: int) -> None:
        for i in range(n):
            gw = f"gw-{i:03d}"
            enroll(gw)
            self.sealers[gw] = Sealer(gw)
            state = GatewayState(gateway=gw, state="online", session=1, ts=time.time(), devices=tuple(
                DeviceInfo(id=f"siren-{j}", kind=DeviceKind.SIREN) for j in range(per)))
            self.c.publish(topics.gw(gw, "state"), self.sealers[gw](state), qos=1, retain=True)

    def _on_command(self, client, userdata, msg) -> None:
        gw = msg.topic.split("/")[3]
        claims = verify_command(msg.payload, keys=self.keys, audience=gw, now=time.time())
        with self.lock:
            self.commands.setdefault(gw, []).append(claims)
        for stage in (AckStage.ACCEPTED, AckStage.SOUNDING):
            ack = Ack(gateway=gw, cmd=claims.jti, alert=claims.alert, stage=stage, devices=claims.targets,
                      ts=time.time())
            client.publish(topics.gw(gw, "ack"), self.sealers[gw](ack, session=True), qos=1)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


async def test_250_gateways_1000_sirens_full_coverage(mosquitto, tmp_path):
    zones = [{"id": "city", "name": "City", "gateways": [f"gw-{i:03d}" for i in range(N_GW)]}]
    cfg = make_config(tmp_path, mosquitto.port, zones=zones, confirm_deadline_s=10.0)
    async with running_hub(cfg) as hub, api(cfg, hub_token(hub)) as http:
        fleet = Fleet(mosquitto.port, hub.keys.verification_keys())
        try:
            fleet.birth(N_GW, PER_GW)
            await eventually(lambda: sum(g.state == "online" for g in hub.registry.gateways.values()) == N_GW,
                             what="250 births")
            r = await http.post("/api/v1/alerts", json={"zones": ["city"], "signal": "air-raid", "mode": "exercise"})
            assert r.status_code == 201 and r.json()["summary"]["total"] == N_GW * PER_GW
            alert = hub.engine.alerts[r.json()["id"]]
            await eventually(lambda: alert.summary().confirmed == N_GW * PER_GW, what="1000 sirens confirmed")
            with fleet.lock:
                assert len(fleet.commands) == N_GW
                assert all(len(cmds) == 1 and len(cmds[0].targets) == PER_GW for cmds in fleet.commands.values())
            assert len({c[0].jti for c in fleet.commands.values()}) == N_GW
            summary = (await http.get(f"/api/v1/alerts/{alert.id}", params={"devices": "false"})).json()["summary"]
            assert summary["confirmed"] == N_GW * PER_GW and summary["pending"] == 0
            assert summary["first_confirm_ms"] <= summary["p50_confirm_ms"] <= summary["p99_confirm_ms"]
            assert alert.attempt == 0 and hub.metrics.command_retries._value.get() == 0
        finally:
            fleet.close()
