"""Regression: one PUBACK delayed past the client's publish timeout while TCP stays open.

Before the fix the gateway's ack task died silently (``_drain_acks`` re-raised, ``_done`` swallowed the
MqttError): the uplink still looked connected and heartbeats flowed, but no ack ever left again. Now a
stuck PUBACK is a dead link: the session reconnects after a bounded time and every ack goes out.
Real Mosquitto, real simulated sirens on a pty, the MQTT-aware relay in between.
"""

from __future__ import annotations

import asyncio

from contract import command as cc
from contract.models import AckStage, Signal
from simulators.netcut import NetCut
from tests.gateway.helpers import SirenRig, make_config, sign
from tests.gateway.test_uplink import Hub, running

STALL_S = 12.0  # longer than the 10 s publish timeout the gateway used to have


async def test_a_stuck_puback_reconnects_and_every_ack_still_goes_out(tmp_path, mosquitto):
    relay = await NetCut(mosquitto.port).start()
    try:
        async with SirenRig(tmp_path, 1) as rig, Hub(mosquitto.port) as hub:
            cfg = make_config(tmp_path, mqtt_url=f"mqtt://127.0.0.1:{relay.port}", buses={rig.name: str(rig.port)},
                              sirens=rig.devices(), heartbeat_s=0.5,
                              extra_mqtt="publish_timeout_s = 1\nstuck_puback_s = 2\n")
            async with running(cfg) as gw:
                await hub.wait(lambda: any(s.state == "online" for s in hub.states()))
                relay.delay_pubacks(STALL_S)
                first = sign(targets=("siren-1",), params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=1))
                await hub.send(first)
                await hub.wait(lambda: relay.stats["delayed_pubacks"] >= 1)
                await asyncio.sleep(STALL_S + 1)  # the fault runs its course (no assertion on time)
                relay.heal()
                second = sign(targets=("siren-1",), params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=1))
                await hub.send(second)
                for token in (first, second):
                    jti = cc.peek(token)["jti"]
                    await hub.wait(lambda jti=jti: any(a.stage is AckStage.DONE for a in hub.acks(jti)), within=20)
                assert rig.activations() == 2
                assert gw.counters.get("mqtt_dead_link_reconnects") >= 1  # counted, not silent
                assert all(gw.uplink.tasks_alive().values()) and set(gw.uplink.tasks_alive()) == {"acks", "heartbeat"}
                await hub.wait(lambda: gw.uplink.pending_acks == 0)  # each ack deleted after its PUBACK
    finally:
        await relay.close()
