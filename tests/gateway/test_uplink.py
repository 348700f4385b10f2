"""The gateway over a real Mosquitto: birth/last-will with sessions, signed commands and ordered acks,
heartbeats, reconnect after a broker restart, malformed payloads on the cmd topic."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import command as cc
from contract import topics
from contract.models import Ack, AckStage, GatewayState, Heartbeat, Signal, decode
from contract.signed import open_sealed, split
from gateway.app import Gateway
from gateway.uplink import UplinkError
from tests.gateway.helpers import GW, HUB_KID, SirenRig, config_text, make_config, sign

ROOT = Path(__file__).resolve().parents[2]



class Hub:
    """A stand-in for the hub: one MQTT client watching everything the gateway publishes."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[tuple[str, bytes, bool]] = []
        self.identity: dict = {}  # kid -> key, from the births seen (a birth announces its own key)
        self.event = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task | None = None
        self.client: aiomqtt.Client | None = None

    async def __aenter__(self) -> Hub:
        self.client = await self._stack.enter_async_context(
            aiomqtt.Client("127.0.0.1", self.port, protocol=aiomqtt.ProtocolVersion.V311))
        await self.client.subscribe(f"dozor/v1/gw/{GW}/#", qos=1)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await self._stack.aclose()

    async def _read(self) -> None:
        async for m in self.client.messages:
            self.messages.append((m.topic.value, bytes(m.payload), m.retain))
            self.event.set()

    async def send(self, payload: bytes | str) -> None:
        await self.client.publish(topics.gw(GW, "cmd"), payload, qos=1)

    def unseal(self, wire: bytes) -> bytes | None:
        """Every message a gateway publishes is sealed (contract.signed): check it against the gateway's key,
        announced in its birth. None: a retained message left on the shared broker by another test's gateway."""
        payload, kid, _sig = split(wire)
        announced = json.loads(payload).get("identity_key")
        if announced:
            key = cc.public_key_from_b64(announced)
            self.identity[cc.key_id(key)] = key
        if kid not in self.identity:
            return None
        return open_sealed(wire, self.identity)

    def states(self) -> list[GatewayState]:
        return [decode(GatewayState, u) for t, p, _ in self.messages if t.endswith("/state") and p
                and (u := self.unseal(p)) is not None]

    def acks(self, jti: str | None = None) -> list[Ack]:
        out = [decode(Ack, self.unseal(p)) for t, p, _ in self.messages if t.endswith("/ack")]
        return [a for a in out if jti is None or a.cmd == jti]

    def heartbeats(self) -> list[Heartbeat]:
        return [decode(Heartbeat, self.unseal(p)) for t, p, _ in self.messages if t.endswith("/heartbeat")]


    async def wait(self, pred, within: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not pred():
            if loop.time() > deadline:
                raise AssertionError(f"timed out; got {[(t, p[:200]) for t, p, _ in self.messages][-20:]}")
            self.event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.event.wait(), 0.2)


@contextlib.asynccontextmanager
async def running(cfg):
    gw = Gateway(cfg)
    task = asyncio.create_task(gw.run())
    try:
        yield gw
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_birth_command_acks_in_order_and_heartbeats(tmp_path, mosquitto):
    async with SirenRig(tmp_path, 2) as rig, Hub(mosquitto.port) as hub:
        cfg = make_config(tmp_path, mqtt_url=mosquitto.url, buses={rig.name: str(rig.port)}, sirens=rig.devices(),
                          heartbeat_s=0.3)
        async with running(cfg) as gw:
            await hub.wait(lambda: any(s.state == "online" for s in hub.states()))
            birth = hub.states()[-1]
            assert birth.session == 1 and birth.keys == (HUB_KID,) and birth.zone == "zone-1"
            assert [d.id for d in birth.devices] == ["siren-1", "siren-2"] and birth.heartbeat_s == 0.3
            token = sign(targets=("siren-1", "siren-2"), params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=1))
            jti = cc.peek(token)["jti"]
            await hub.send(token)
            await hub.wait(lambda: any(a.stage is AckStage.DONE for a in hub.acks(jti)))
            acks = hub.acks(jti)
            assert [a.stage.value for a in acks] == ["accepted", "sounding", "done"]
            assert all(a.devices == ("siren-1", "siren-2") for a in acks)
            assert rig.activations() == 2
            seen = len(hub.heartbeats())
            await hub.wait(lambda: len(hub.heartbeats()) >= seen + 2)  # one built after "done"
            hb = hub.heartbeats()[-1]
            assert hb.session == 1 and {d.id: d.state.value for d in hb.devices} == {"siren-1": "idle",
                                                                                      "siren-2": "idle"}
            assert hb.counters["cmd_accepted"] == 1 and gw.counters.get("mqtt_births") == 1


async def test_reconnects_and_re_births_with_a_higher_session_after_a_broker_restart(tmp_path, mosquitto):
    async with SirenRig(tmp_path, 1) as rig:
        cfg = make_config(tmp_path, mqtt_url=mosquitto.url, buses={rig.name: str(rig.port)}, sirens=rig.devices())
        async with running(cfg) as gw:
            async with Hub(mosquitto.port) as hub:
                await hub.wait(lambda: any(s.state == "online" for s in hub.states()))
                first = hub.states()[-1].session
            await asyncio.to_thread(mosquitto.restart, 0.5)
            async with Hub(mosquitto.port) as hub:
                await hub.wait(lambda: any(s.state == "online" and s.session > first for s in hub.states()))
                token = sign(targets=("siren-1",))
                await hub.send(token)
                await hub.wait(lambda: any(a.stage is AckStage.SOUNDING for a in hub.acks(cc.peek(token)["jti"])))
            assert gw.counters.get("mqtt_disconnects") >= 1 and gw.counters.get("mqtt_births") >= 2
            assert rig.activations() == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
async def test_malformed_payloads_on_the_cmd_topic_are_counted_and_refused(tmp_path, shared_mosquitto, payload):
    # One broker for all examples; one short-lived gateway per example keeps examples independent.
    state = tmp_path / f"s-{os.urandom(4).hex()}"
    cfg = make_config(state, mqtt_url=shared_mosquitto.url)
    async with Hub(shared_mosquitto.port) as hub, running(cfg) as gw:
        await hub.wait(lambda: any(s.state == "online" for s in hub.states() if s.session >= 1)
                       and gw.uplink is not None and gw.uplink.connected.is_set())
        await hub.send(payload)
        await hub.wait(lambda: any(a.stage is AckStage.REJECTED for a in hub.acks()))
        rejected = [a for a in hub.acks() if a.stage is AckStage.REJECTED]
        assert len(rejected) == 1 and rejected[0].token_sha256 == cc.token_sha256(payload)
        assert gw.counters.get("mqtt_cmd_messages") == 1 and gw.counters.get("cmd_rejected") == 1
        assert gw.counters.get("mqtt_callback_errors") == 0 and gw.counters.get("command_handler_errors") == 0


async def test_last_will_marks_a_killed_gateway_offline_with_its_session(tmp_path, mosquitto):
    cfg_path = tmp_path / "gw.toml"
    cfg_path.write_text(config_text(tmp_path / "state", mqtt_url=mosquitto.url))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with Hub(mosquitto.port) as hub:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from dozor.cli import app; app()", "gateway", "run", "--config", str(cfg_path),
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await hub.wait(lambda: any(s.state == "online" for s in hub.states()), within=30)
            session = hub.states()[-1].session
            proc.send_signal(signal.SIGKILL)  # power cut: no clean disconnect
            await asyncio.wait_for(proc.wait(), 10)
            await hub.wait(lambda: any(s.state == "offline" for s in hub.states()), within=30)
            assert hub.states()[-1].session == session
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_bulk_publishes_wait_for_the_ack_lane_and_fail_cleanly_when_down(tmp_path, mosquitto):
    cfg = make_config(tmp_path, mqtt_url=mosquitto.url)
    async with Hub(mosquitto.port) as hub:
        gw = Gateway(cfg)
        async with gw:
            up = gw.uplink
            with pytest.raises(UplinkError, match="not connected"):
                await up.publish_bulk(topics.gw(GW, "telemetry"), b"{}")
            events: list[str] = []
            up.on_connected.append(lambda: events.append("up"))
            up.on_disconnected.append(lambda: events.append("down"))
            up.on_connected.append(lambda: 1 / 0)  # a broken hook is counted, never fatal
            task = asyncio.create_task(up.run())
            try:
                await asyncio.wait_for(up.connected.wait(), 15)
                token = sign(targets=("siren-x",))  # refused: unknown target -> one rejected ack
                await gw.executor.handle(token)
                await up.publish_bulk(topics.gw(GW, "telemetry"), b'{"bulk":1}')
                await hub.wait(lambda: any(t.endswith("/telemetry") for t, _, _ in hub.messages))
                kinds = [t.rsplit("/", 1)[1] for t, _, _ in hub.messages if not t.endswith(("/state", "/heartbeat"))]
                assert kinds == ["ack", "telemetry"]  # the ack queued first went out first
                assert up.pending_acks == 0 and gw.counters.get("mqtt_bulk_published") == 1
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert events == ["up", "down"] and gw.counters.get("uplink_hook_errors") == 1
