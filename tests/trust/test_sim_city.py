"""`dozor sim city --hub-config DIR/hub.toml` joins a hub that checks signatures in one command: it trusts the
hub's keys and enrolls its gateways' identity keys, so every gateway is online and an alert reaches every siren."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from tests.trust.harness import DOZOR, HubProc, dozor, wait

pytestmark = pytest.mark.integration


async def test_sim_city_with_hub_config_joins_a_signature_checking_hub(mosquitto, tmp_path):
    gateways = ["gw-0001", "gw-0002"]
    hub = await HubProc(tmp_path, mosquitto.url, gateways).start()
    city = await asyncio.create_subprocess_exec(
        DOZOR, "sim", "city", "--gateways", "2", "--sirens-per-gateway", "2", "--broker", mosquitto.url,
        "--hub-config", str(hub.config), "--spinup-s", "0", "--heartbeat-s", "1", "--state-dir", str(tmp_path / "city"),
        stdout=asyncio.subprocess.DEVNULL, stderr=(tmp_path / "city.log").open("wb"))
    try:
        async def online() -> bool:
            gws = await hub.gateways()
            return all(g in gws and gws[g]["state"] == "online" and gws[g]["trusts_active_key"] for g in gateways)

        await wait(online, "the simulated city online at the hub")
        enrolled = (await dozor("gateways", "history", "--config", str(hub.config), "--json")).stdout
        assert {r["gateway"] for r in json.loads(enrolled)} == set(gateways)
        alert = await hub.start_alert("test", "exercise", duration_s=60)

        async def covered() -> bool:
            return (await hub.alert(alert))["summary"]["confirmed"] == 4

        await wait(covered, "all four sirens sounding")
        assert await hub.metric("dozor_hub_gateway_messages_unverified_total") == 0
    finally:
        city.send_signal(signal.SIGTERM)
        await city.wait()
        await hub.stop()
