"""`dozor sim city --lite` (simulators/city_lite.py) against a real Mosquitto and a real `dozor hub run`: every lite
gateway enrolls its own identity key, comes online with a signed birth, gets the hub's signed alert, and acks
`accepted` then `sounding` per siren with sealed acks the hub accepts; a forged command, a real command for another
gateway and a replayed one are refused by the lite gateway with the contract's reasons (counted, a `rejected` ack,
nothing driven). No wall-clock assertion: counts and ordering."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import topics
from contract.broker import BrokerAddress
from contract.command import CommandClaims, key_id, peek, public_key_from_b64, sign_command
from contract.models import Ack, Action, Mode, decode
from contract.signed import open_sealed
from dozor.commands.sim_city import lite_enroller
from hub.keys import KeyRing
from simulators.city import CityPlan
from simulators.city_lite import LiteCity, LiteSettings
from tests.trust.harness import DOZOR, HubProc, wait

pytestmark = pytest.mark.integration
GATEWAYS = 3
SIRENS = 2


class Wire:
    """A plain MQTT client that records every command and ack on the broker, in arrival order."""

    def __init__(self, url: str) -> None:
        self.cmds: list[tuple[str, bytes]] = []  # (gateway, token)
        self.acks: list[tuple[str, bytes]] = []  # (gateway, sealed ack)
        self.lock = threading.Lock()
        host, port = BrokerAddress(url=url).endpoints[0]
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"wire-{os.getpid()}")
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe([(topics.DEFAULT.sub_gateways("cmd"), 1), (topics.DEFAULT.sub_gateways("ack"), 1)])
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        parsed = topics.parse(msg.topic)
        with self.lock:
            (self.cmds if parsed.channel == "cmd" else self.acks).append((parsed.ident, bytes(msg.payload)))

    def publish(self, gateway: str, token: bytes) -> None:
        self.client.publish(topics.gw(gateway, "cmd"), token, qos=1).wait_for_publish(10)

    def acks_of(self, gateway: str, public_b64: str) -> list[Ack]:
        """The gateway's acks, each verified against its identity key, in the order they reached the broker."""
        pub = public_key_from_b64(public_b64)
        with self.lock:
            wires = [w for g, w in self.acks if g == gateway]
        return [decode(Ack, open_sealed(w, {key_id(pub): pub})) for w in wires]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def test_lite_city_sounds_a_signed_alert_and_refuses_forged_foreign_and_replayed_commands(mosquitto, tmp_path):
    plan = CityPlan(GATEWAYS, SIRENS, zones=1)
    hub = await HubProc(tmp_path, mosquitto.url, plan.gateway_ids()).start()
    wire = Wire(mosquitto.url)
    await asyncio.to_thread(wire.subscribed.wait, 10)
    keys = KeyRing(hub.state).load()
    settings = LiteSettings(BrokerAddress(url=mosquitto.url), keys.public_keys_b64(), heartbeat_s=1.0)
    city = LiteCity(plan, settings, tmp_path / "city", enroll=lite_enroller(hub.state))
    try:
        await city.start()

        async def online() -> bool:
            gws = await hub.gateways()
            return all(g in gws and gws[g]["state"] == "online" for g in plan.gateway_ids())

        await wait(online, "every lite gateway online at the hub")
        gws = await hub.gateways()
        assert all(len(gws[g]["devices"]) == SIRENS for g in plan.gateway_ids()), gws
        alert = await hub.start_alert("air-raid", "exercise", duration_s=600)

        async def covered() -> bool:
            return (await hub.alert(alert))["summary"]["confirmed"] == GATEWAYS * SIRENS

        await wait(covered, "every siren of the lite city sounding at the hub")
        assert city.sounding() == GATEWAYS * SIRENS
        timed = city.timings()
        assert timed["sounding_ms"]["n"] >= GATEWAYS and timed["loop_lag_ms"]["n"] > 0, timed  # one sounding ack each
        states = await hub.device_states(alert)
        assert set(states.values()) == {"sounding"} and len(states) == GATEWAYS * SIRENS
        for g in city.gateways:
            acks = wire.acks_of(g.id, g.public_b64)  # sealed by the gateway's own key: open_sealed checks it
            stages = [(a.stage.value, a.devices) for a in acks if a.alert == alert]
            assert stages[0] == ("accepted", ("siren-1", "siren-2")), stages
            assert ("sounding", ("siren-1", "siren-2")) in stages[1:], stages
            assert all(a.mode is Mode.EXERCISE and a.session == g.session for a in acks)
            ctrs = [a.ctr for a in acks]
            assert ctrs == sorted(ctrs) and len(set(ctrs)) == len(ctrs)  # one session, counters in order
            assert g.counters["cmd_rejected"] == 0
        assert await hub.metric("dozor_hub_gateway_messages_unverified_total") == 0

        first, second = city.gateways[0], city.gateways[1]
        activated = first.counters["device_activated"]
        with wire.lock:
            theirs = next(t for g, t in wire.cmds if g == second.id)
            ours = next(t for g, t in wire.cmds if g == first.id)
        # 1. a real, hub-signed command for another gateway, replayed on this gateway's topic
        wire.publish(first.id, theirs)
        # 2. a forged command: this gateway's audience and the hub's kid, signed by another key
        now = int(time.time())
        forged = sign_command(CommandClaims(aud=first.id, jti="forged-0001", iat=now, exp=now + 60, act=Action.STOP,
                                            targets=("siren-1",), alert=alert, mode=Mode.EXERCISE),
                              Ed25519PrivateKey.generate(), kid=keys.kid).encode()
        wire.publish(first.id, forged)
        # 3. this gateway's own command again (a replay)
        wire.publish(first.id, ours)
        await wait(lambda: first.counters["cmd_rejected"] == 3, "three refusals at the first gateway")
        assert first.counters["cmd_rejected_wrong_audience"] == 1
        assert first.counters["cmd_rejected_bad_signature"] == 1
        assert first.counters["cmd_rejected_replayed"] == 1
        await wait(lambda: len([a for a in wire.acks_of(first.id, first.public_b64) if a.stage.value == "rejected"])
                   == 3, "three rejected acks from the first gateway")
        rejected = {a.cmd: a.reason for a in wire.acks_of(first.id, first.public_b64) if a.stage.value == "rejected"}
        assert rejected == {peek(theirs)["jti"]: "wrong_audience", "forged-0001": "bad_signature",
                            peek(ours)["jti"]: "replayed"}
        # nothing driven: no accepted ack for those, the sirens still sound for the alert, none restarted
        accepted = {a.cmd for a in wire.acks_of(first.id, first.public_b64) if a.stage.value == "accepted"}
        assert "forged-0001" not in accepted and peek(theirs)["jti"] not in accepted
        assert first.sirens.sounding == SIRENS and first.counters["device_activated"] == activated
        assert second.counters["cmd_rejected"] == 0

        assert (await hub.stop_alert(alert)).returncode == 0
        await wait(lambda: city.sounding() == 0, "every siren of the lite city silent after the stop")

        async def stopped() -> bool:  # the hub has every siren's signed "done"
            return set((await hub.device_states(alert)).values()) == {"done"}

        await wait(stopped, "every siren confirmed silent at the hub")
        assert city.crashed() == []
    finally:
        await city.stop()
        wire.close()
        await hub.stop()


def test_lite_refuses_what_it_does_not_simulate(tmp_path):
    """--lite runs sirens over a plain or password login: speakers and certificate bundles are refused (exit 2)."""
    out = subprocess.run([DOZOR, "sim", "city", "--lite", "--speakers-per-gateway", "1", "--hub-key", "k=v",
                          "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--lite" in out.stderr, out.stderr
    assert not any(tmp_path.iterdir()) and out.stdout == ""
