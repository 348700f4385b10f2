"""Forged gateway messages against a real hub and real gateways (child processes, real Mosquitto, sirens on
ptys): no signature, a wrong key, a forged key id, another gateway's key, a bad signature, a replayed (captured)
message. Births, last-wills, heartbeats and acks, generated with hypothesis (at least 1,000). The hub's view of
the gateways and of the sounding alert never changes, nothing sounds or stops at the controllers, and every
attempt is counted."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import topics
from contract.command import key_id, peek, token_sha256
from contract.models import (
    Ack,
    AckStage,
    DeviceInfo,
    DeviceKind,
    DeviceState,
    DeviceStatus,
    GatewayState,
    Heartbeat,
)
from contract.signed import MARK, seal
from gateway.identity import load_or_create
from tests.gateway.helpers import SirenRig
from tests.trust.harness import GatewayProc, HubProc, Tap, wait

pytestmark = pytest.mark.integration
N_MESSAGES = 1000
BATCH = 250
ATTACKER = Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))

forged = st.fixed_dictionaries({
    "attack": st.sampled_from(["unsigned", "wrong_key", "forged_kid", "other_gateway", "bad_signature",
                               "bad_trailer", "replayed"]),
    "kind": st.sampled_from(["birth", "will", "heartbeat", "ack"]),
    "session": st.one_of(st.integers(0, 5), st.integers(0, 2**62)),
    "ctr": st.integers(0, 2**31),
    "pick": st.integers(0, 10_000),
    "stage": st.sampled_from(list(AckStage)),
    "state": st.sampled_from(list(DeviceState)),
    "no_devices": st.booleans(),
    "retain": st.booleans(),
})


def generate(n: int) -> list[dict]:
    """Hypothesis draws the attacks; they are sent below against processes that live for the whole test."""
    out: list[dict] = []

    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(spec=forged)
    def draw(spec: dict) -> None:
        out.append(spec)

    draw()
    return out


class Attacker:
    def __init__(self, tap: Tap, alert: str, gw2_key: Ed25519PrivateKey, gw1_kid: str) -> None:
        self.tap, self.alert, self.gw2_key, self.gw1_kid = tap, alert, gw2_key, gw1_kid
        signed = {topics.gw("gw-1", ch) for ch in ("state", "heartbeat", "ack")}  # what a gateway signs
        self.captured = [(t, p) for t, p, _ in tap.messages if t in signed and p]
        self.tokens = tap.of("gw-1", "cmd")
        assert self.captured and self.tokens

    def build(self, spec: dict) -> tuple[str, bytes, bool]:
        if spec["attack"] == "replayed":
            topic, payload = self.captured[spec["pick"] % len(self.captured)]
            return topic, payload, False
        token = self.tokens[spec["pick"] % len(self.tokens)]
        kind, now = spec["kind"], time.time()
        devices = () if spec["no_devices"] else (DeviceInfo(id="siren-9", kind=DeviceKind.SIREN),)
        if kind in ("birth", "will"):
            channel = "state"
            msg = GatewayState(gateway="gw-1", state="online" if kind == "birth" else "offline",
                               session=spec["session"], ts=now, devices=devices if kind == "birth" else (),
                               ctr=0 if kind == "will" else spec["ctr"])
        elif kind == "heartbeat":
            channel = "heartbeat"
            msg = Heartbeat(gateway="gw-1", session=spec["session"], seq=spec["ctr"], ts=now, uptime_s=1,
                            devices=(DeviceStatus(id="siren-1", state=spec["state"]),), ctr=spec["ctr"])
        else:
            channel = "ack"
            msg = Ack(gateway="gw-1", cmd=str(peek(token)["jti"]), alert=self.alert, stage=spec["stage"],
                      devices=("siren-1", "siren-2") if spec["no_devices"] else (), reason="forged", ts=now,
                      token_sha256=token_sha256(token), session=spec["session"], ctr=spec["ctr"])
        body = msg.to_bytes()
        attack = spec["attack"]
        if attack == "unsigned":
            wire = body
        elif attack == "wrong_key":
            wire = seal(body, ATTACKER, key_id(ATTACKER.public_key()))
        elif attack == "forged_kid":
            wire = seal(body, ATTACKER, self.gw1_kid)
        elif attack == "other_gateway":
            wire = seal(body, self.gw2_key, key_id(self.gw2_key.public_key()))
        elif attack == "bad_signature":
            wire = body + b"\n" + MARK + self.gw1_kid.encode() + b" " + b"A" * 86
        else:
            wire = body + b"\n" + MARK + b"?"
        return topics.gw("gw-1", channel), wire, spec["retain"] and channel == "state"


def view(gateways: dict, alert: dict) -> dict:
    """What an operator sees; the two fields that move by themselves are left out (the age of the last heartbeat,
    and the count of ignored messages, which is what this test makes go up)."""
    gws = {g: {k: v for k, v in doc.items() if k not in ("last_heartbeat_age_s", "unverified")}
           for g, doc in gateways.items()}
    return {"gateways": gws, "alert": {k: v for k, v in alert.items() if k != "updated_at"}}


async def test_forged_gateway_messages_change_nothing_and_are_all_counted(mosquitto, tmp_path):
    specs = generate(N_MESSAGES)
    assert len(specs) >= N_MESSAGES
    hub = await HubProc(tmp_path, mosquitto.url, ["gw-1", "gw-2"]).start()
    tap = Tap(mosquitto.port)
    async with SirenRig(tmp_path, 2) as rig1, SirenRig(tmp_path, 1, name="rs485-2") as rig2:
        gws = [await GatewayProc(tmp_path, "gw-1", mosquitto.url, hub, rig1, heartbeat_s=3600).setup(),
               await GatewayProc(tmp_path, "gw-2", mosquitto.url, hub, rig2, heartbeat_s=3600).setup()]
        try:
            for gw in gws:
                await gw.enroll()
                gw.start()
            for gw in gws:
                await wait(gw.online, f"{gw.id} online")
            alert = await hub.start_alert("air-raid", "actual", duration_s=600)
            await wait(lambda: rig1.activations() == 2 and rig2.activations() == 1, "all three sirens sounding")
            await wait(lambda: _all(hub, alert, "sounding"), "the hub shows three sirens sounding")
            before = view(await hub.gateways(), await hub.alert(alert))
            gw1_kid = load_or_create(gws[0].state).kid
            attacker = Attacker(tap, alert, load_or_create(gws[1].state).private, gw1_kid)
            counted = await hub.metric("dozor_hub_gateway_messages_unverified_total")
            assert counted == 0
            kinds: dict[str, int] = {}
            for start in range(0, len(specs), BATCH):
                for spec in specs[start:start + BATCH]:
                    topic, wire, retain = attacker.build(spec)
                    tap.publish(topic, wire, retain=retain)
                    kinds[topic.rsplit("/", 1)[1]] = kinds.get(topic.rsplit("/", 1)[1], 0) + 1
                sent = min(start + BATCH, len(specs))
                await wait(lambda n=sent: _metric_is(hub, n), f"{sent} forged messages counted")
                assert view(await hub.gateways(), await hub.alert(alert)) == before
                assert rig1.activations() == 2 and rig2.activations() == 1
                assert sum(s.sounding for s in rig1.sirens + rig2.sirens) == 3
            assert await hub.metric("dozor_hub_gateway_messages_unverified_total") == len(specs)
            for channel in ("state", "heartbeat", "ack"):
                assert await hub.metric("dozor_hub_gateway_messages_unverified_total", channel=channel) \
                    == kinds[channel] > 0
            for reason in ("unsigned", "unknown_key", "bad_signature", "bad_format", "replayed"):
                assert await hub.metric("dozor_hub_gateway_messages_unverified_total", reason=reason) > 0
            assert (await hub.gateways())["gw-1"]["unverified"] == len(specs)
            # the real gateways still work: a stop lands everywhere and the hub shows it
            assert (await hub.stop_alert(alert)).returncode == 0
            await wait(lambda: not any(s.sounding for s in rig1.sirens + rig2.sirens), "all silent")
            await wait(lambda: _all(hub, alert, "done"), "the hub shows all three silent")
        finally:
            tap.close()
            for gw in gws:
                await gw.stop()
            await hub.stop()


async def _all(hub: HubProc, alert: str, state: str) -> bool:
    states = await hub.device_states(alert)
    return len(states) == 3 and set(states.values()) == {state}


async def _metric_is(hub: HubProc, n: int) -> bool:
    return await hub.metric("dozor_hub_gateway_messages_unverified_total") == n
