"""Replays on a real broker against real processes, counted at the simulated controllers:

- stop scoping: an old alert's stop (the captured one, and a never-seen one signed for the old alert) while a
  new alert sounds changes nothing;
- state loss: a gateway restarted with an empty state dir accepts none of the commands captured before; as a
  new enrollment it comes back online at once (session epoch reset), and fresh commands work;
- recovery: `dozor gateways reset` clears the retained birth, is audited with its reason, and the gateway
  comes back with its next signed heartbeat.
"""

from __future__ import annotations

import json
import time

import pytest

from contract import topics
from contract.command import CommandClaims, peek, sign_command
from contract.models import Ack, Action, Mode, decode
from contract.signed import split
from hub.keys import KeyRing
from tests.gateway.helpers import SirenRig
from tests.trust.harness import GatewayProc, HubProc, Tap, assert_docs_ran, dozor, wait

pytestmark = pytest.mark.integration


def tokens(tap: Tap, gateway: str, alert: str, act: str) -> list[bytes]:
    return [t for t in tap.of(gateway, "cmd") if peek(t).get("alert") == alert and peek(t).get("act") == act]


def acks(tap: Tap, gateway: str) -> list[Ack]:
    return [decode(Ack, split(p)[0]) for p in tap.of(gateway, "ack")]


async def _states(hub: HubProc, alert: str, state: str, n: int = 2) -> bool:
    states = await hub.device_states(alert)
    return len(states) == n and set(states.values()) == {state}


async def test_an_old_alerts_stop_changes_nothing_while_a_new_alert_sounds(mosquitto, tmp_path):
    hub = await HubProc(tmp_path, mosquitto.url, ["gw-1"], command_ttl_s=60).start()
    tap = Tap(mosquitto.port)
    async with SirenRig(tmp_path, 2) as rig:
        gw = await GatewayProc(tmp_path, "gw-1", mosquitto.url, hub, rig).setup()
        await gw.enroll()
        gw.start()
        try:
            await wait(gw.online, "gw-1 online")
            old = await hub.start_alert("air-raid", "actual")
            await wait(lambda: gw.sounding() == 2, "the old alert sounding")
            assert (await hub.stop_alert(old)).returncode == 0
            await wait(lambda: gw.sounding() == 0, "the old alert stopped")
            await wait(lambda: _states(hub, old, "done"), "the hub shows the old alert silent")
            captured = tokens(tap, "gw-1", old, "stop")
            assert captured

            new = await hub.start_alert("chemical", "actual")
            await wait(lambda: gw.sounding() == 2, "the new alert sounding")
            await wait(lambda: _states(hub, new, "sounding"), "the hub shows the new alert sounding")
            activations = rig.activations()
            # 1. the captured stop of the old alert, replayed verbatim
            for token in captured:
                tap.publish(topics.gw("gw-1", "cmd"), token)
            await wait(lambda: sum(a.reason == "replayed" for a in acks(tap, "gw-1")) == len(captured),
                       "the replays refused")
            # 2. a stop of the old alert the gateway never saw (long expired: stops are never refused for age)
            key = KeyRing(hub.state).load()
            iat = int(time.time()) - 600
            unseen = sign_command(CommandClaims(aud="gw-1", jti="unseen-old-stop", iat=iat, exp=iat + 30,
                                                act=Action.STOP, targets=("siren-1", "siren-2"), alert=old,
                                                mode=Mode.ACTUAL), key.private, key.kid)
            tap.publish(topics.gw("gw-1", "cmd"), unseen.encode())
            await wait(lambda: any(a.cmd == "unseen-old-stop" and a.stage.value == "done" for a in acks(tap, "gw-1")),
                       "the unseen old stop executed (on nothing)")
            assert [a.detail for a in acks(tap, "gw-1") if a.cmd == "unseen-old-stop" and a.stage.value == "done"] \
                == ["not sounding for this alert"]
            assert gw.sounding() == 2 and rig.activations() == activations
            assert await _states(hub, new, "sounding")
            # the new alert's own stop still works
            assert (await hub.stop_alert(new)).returncode == 0
            await wait(lambda: gw.sounding() == 0, "the new alert stopped")
        finally:
            tap.close()
            await gw.stop()
            await hub.stop()


async def test_an_emptied_state_dir_accepts_no_captured_command_and_rejoins_as_a_new_enrollment(mosquitto,
                                                                                                 tmp_path):
    hub = await HubProc(tmp_path, mosquitto.url, ["gw-1"], command_ttl_s=900).start()
    tap = Tap(mosquitto.port)
    async with SirenRig(tmp_path, 2) as rig:
        gw = await GatewayProc(tmp_path, "gw-1", mosquitto.url, hub, rig).setup()
        first = await gw.enroll()
        gw.start()
        try:
            await wait(gw.online, "gw-1 online")
            alert = await hub.start_alert("air-raid", "actual", duration_s=900)
            await wait(lambda: gw.sounding() == 2, "sounding")
            assert (await hub.stop_alert(alert)).returncode == 0
            await wait(lambda: gw.sounding() == 0, "stopped")
            captured = [t for t in tap.of("gw-1", "cmd")]
            assert tokens(tap, "gw-1", alert, "activate")
            activations = rig.activations()

            await gw.stop()
            gw.wipe_state()  # re-installed: empty state dir, so a new identity key and an empty replay store
            gw.start()
            await wait(lambda: _unverified(hub, "unknown_key"), "the new key is not trusted on first use")
            await wait(lambda: _offline(hub), "its unsigned-for-the-hub heartbeats do not keep it online")
            second = await gw.enroll()  # a new enrollment: new key, session epoch reset on purpose
            assert second["kid"] != first["kid"] and second["epoch"] == first["epoch"] + 1 and second["changed"]
            await wait(gw.online, "the re-enrolled gateway online (never offline forever)")
            session = (await hub.gateways())["gw-1"]["session"]
            assert session >= 1

            seen = len(acks(tap, "gw-1"))
            for token in captured:  # every command captured before the state was lost, replayed
                tap.publish(topics.gw("gw-1", "cmd"), token)
            await wait(lambda: len(acks(tap, "gw-1")) - seen >= len(captured), "every replay answered")
            new_acks = acks(tap, "gw-1")[seen:]
            activates = [a for a in new_acks if a.cmd in {peek(t)["jti"] for t in tokens(tap, "gw-1", alert,
                                                                                          "activate")}]
            assert activates and {a.reason for a in activates} == {"before_floor"}
            assert rig.activations() == activations and gw.sounding() == 0
            # fresh commands work
            again = await hub.start_alert("test", "exercise", duration_s=60)
            await wait(lambda: gw.sounding() == 2, "a fresh alert sounds")
            assert (await hub.stop_alert(again)).returncode == 0
            await wait(lambda: gw.sounding() == 0, "and stops")

            # operator recovery: reset clears the retained birth (audited with its reason); the next signed
            # heartbeat brings the gateway back
            res = await dozor("gateways", "reset", "gw-1", "--reason", "state dir replaced on the cabinet",
                              "--config", str(hub.config), "--json")
            assert json.loads(res.stdout)["reset"] is True
            await wait(lambda: any(t == topics.gw("gw-1", "state") and p == b"" for t, p, _ in tap.messages),
                       "the retained birth cleared on the broker")
            await wait(gw.online, "back online with its next heartbeat")
            log = json.loads((await dozor("audit", "log", "--config", str(hub.config), "--json")).stdout)
            reset = [r for r in log if r["action"] == "gateway.reset"]
            assert reset and reset[-1]["details"]["reason"] == "state dir replaced on the cabinet"
            assert [r["subject"] for r in log if r["action"] == "gateway.enroll"] == ["gw-1", "gw-1"]
            history = (await dozor("gateways", "history", "gw-1", "--config", str(hub.config))).stdout
            assert " enroll " in history and " reenroll " in history and "state dir replaced on the cabinet" in history
            table = (await dozor("gateways", env={**hub.env, "COLUMNS": "200"})).stdout
            assert "gw-1" in table and "unverified" in table
            assert_docs_ran("Gateway identity, enrollment and recovery")
        finally:
            tap.close()
            await gw.stop()
            await hub.stop()


async def _unverified(hub: HubProc, reason: str) -> bool:
    return await hub.metric("dozor_hub_gateway_messages_unverified_total", reason=reason) > 0


async def _offline(hub: HubProc) -> bool:
    return (await hub.gateways())["gw-1"]["state"] == "offline"
