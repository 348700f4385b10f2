"""A stop always lands (invariant 10), with real processes: sirens sounding for an Actual alert, the gateway is
killed with SIGKILL, the operator presses stop while it is down, the gateway restarts. The sirens go silent at
the simulated controllers after the reconnect, and the hub shows them silent only after the gateway's signed
done ack. Ten rounds, all must pass."""

from __future__ import annotations

import json

import pytest

from tests.gateway.helpers import SirenRig
from tests.trust.harness import GatewayProc, HubProc, wait

pytestmark = pytest.mark.integration
ROUNDS = 10


async def test_stop_pressed_while_the_gateway_is_down_lands_after_its_restart(mosquitto, tmp_path):
    hub = await HubProc(tmp_path, mosquitto.url, ["gw-1"]).start()
    async with SirenRig(tmp_path, 2) as rig:
        gw = await GatewayProc(tmp_path, "gw-1", mosquitto.url, hub, rig).setup()
        await gw.enroll()
        gw.start()
        try:
            await wait(gw.online, "gw-1 online at the hub")
            for round_ in range(ROUNDS):
                alert = await hub.start_alert("air-raid", "actual", duration_s=600)
                await wait(lambda: gw.sounding() == 2, f"round {round_}: both sirens sounding at the controllers")

                async def states(alert=alert):
                    return set((await hub.device_states(alert)).values())

                await wait(lambda: _eq(states(), {"sounding"}), "the hub shows them sounding")
                activations = rig.activations()

                await gw.kill9()  # the controllers keep sounding: nobody is left to stop them
                await wait(lambda: _gw_state(hub, "offline"), "the signed last-will at the hub")
                sent_before = await hub.metric("dozor_hub_commands_sent_total", act="stop")
                res = await hub.stop_alert(alert)
                assert res.returncode == 0, res.stderr
                assert json.loads(res.stdout)["status"] == "stopped"
                done_before = await hub.metric("dozor_hub_acks_total", stage="done")
                # the hub re-sends with fresh commands while it waits for a confirmation ...
                await wait(lambda n=sent_before + 1: _more(hub.metric("dozor_hub_commands_sent_total", act="stop"), n),
                           "a stop re-sent while the gateway is down")
                # ... and never shows a device silent without the gateway's authenticated ack
                assert "done" not in await states()
                assert gw.sounding() == 2
                again = await hub.stop_alert(alert)  # a second stop is accepted while a target still sounds
                assert again.returncode == 0, again.stderr

                gw.start()
                await wait(lambda: gw.sounding() == 0, f"round {round_}: sirens silent after the gateway reconnected")
                await wait(lambda: _eq(states(), {"done"}), "the hub shows them silent")
                assert await hub.metric("dozor_hub_acks_total", stage="done") > done_before  # signed done acks
                assert rig.activations() == activations  # nothing sounded again
                assert (await hub.alert(alert))["summary"]["confirmed"] == 2
                await wait(gw.online, "gw-1 online for the next round")
            assert await hub.metric("dozor_hub_gateway_messages_unverified_total") == 0
        finally:
            await gw.stop()
            await hub.stop()


async def _eq(coro, value) -> bool:
    return await coro == value


async def _more(coro, floor: float) -> bool:
    return await coro >= floor


async def _gw_state(hub: HubProc, state: str) -> bool:
    return (await hub.gateways())["gw-1"]["state"] == state
