"""Broken links with real parts: a `dozor hub run` process, a real gateway, real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path

import httpx
import pytest

from dozor.client import HubClient
from dozor.commands.sim_city import enrolling_factory, hub_keys_from
from simulators.brokers import free_port
from simulators.city import City, CityPlan
from tests.gwident import enroll_gateway
from tests.tokens import admin_token

pytestmark = pytest.mark.integration
DOZOR = str(Path(sys.executable).with_name("dozor"))


async def wait_for(predicate, what: str, attempts: int = 300, every: float = 0.1):
    for _ in range(attempts):
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(every)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
async def hub(mosquitto, tmp_path):
    plan = CityPlan(gateways=1, sirens_per_gateway=2)
    (tmp_path / "zones.json").write_text(json.dumps(plan.zones_config()))
    port = free_port()
    (tmp_path / "hub.toml").write_text(
        f'[hub]\nstate_dir = "hub"\napi_port = {port}\nzones = "zones.json"\n[mqtt]\nurl = "{mosquitto.url}"\n')
    token = admin_token(tmp_path / "hub")
    proc = await asyncio.create_subprocess_exec(DOZOR, "hub", "run", "--config", str(tmp_path / "hub.toml"),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{url}/healthz").status_code == 200
        return False

    await wait_for(up, "the hub API")
    client = HubClient(url, token)
    yield plan, client, hub_keys_from(tmp_path / "hub", []), tmp_path
    client.close()
    proc.terminate()
    await proc.wait()


def gateway_state(client: HubClient, gid: str):
    return next((g for g in client.gateways() if g.id == gid), None)


async def test_broker_restart_hub_sees_offline_then_online_with_a_new_session(mosquitto, hub):
    plan, client, keys, tmp = hub
    gid = plan.gateway_id(0)
    async with City(plan, mosquitto.url, keys, tmp / "city", enrolling_factory(tmp / "hub"), spinup_s=0, heartbeat_s=0.5):
        first = await wait_for(lambda: (g := gateway_state(client, gid)) and g.state == "online" and g,
                               "the gateway online")
        mosquitto.stop()  # the link is gone for everyone; the hub's heartbeat timeout (2 x 0.5 s) notices
        await wait_for(lambda: gateway_state(client, gid).state == "offline", "the gateway marked offline")
        mosquitto.start()  # same port: the gateway reconnects and re-births with a higher session
        again = await wait_for(lambda: (g := gateway_state(client, gid)) and g.state == "online"
                               and g.session > first.session and g, "the gateway online again", attempts=600)
        assert again.session > first.session
        # and it still obeys: an alert after the outage is confirmed by both sirens
        alert = await asyncio.to_thread(client.create_alert, [plan.zone_id(0)], "air-raid", "exercise",
                                        duration_s=30)
        done = await wait_for(lambda: (d := client.alert(alert.id)) and not d.tracking and d, "coverage")
        assert done.summary.confirmed == plan.sirens_total


async def test_a_killed_gateway_is_offline_at_once_through_its_last_will(mosquitto, hub):
    """Heartbeats are set too slow to matter (30 s): only the broker's last-will can tell the hub."""
    plan, client, keys, tmp = hub
    gid = plan.gateway_id(0)
    cfg = tmp / "gw.toml"
    cfg.write_text(_gateway_toml(tmp, gid, mosquitto.url, keys))
    enroll_gateway(tmp / "city" / gid, gid, [tmp / "hub"])
    proc = await asyncio.create_subprocess_exec(DOZOR, "gateway", "run", "--config", str(cfg),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        seen = await wait_for(lambda: (g := gateway_state(client, gid)) and g.state == "online" and g,
                              "the gateway process online")
        proc.kill()
        await proc.wait()
        off = await wait_for(lambda: (g := gateway_state(client, gid)) and g.state == "offline" and g,
                             "offline through the last will", attempts=100)
        assert off.session == seen.session and "heartbeat" not in (off.reason or "")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _gateway_toml(tmp: Path, gid: str, url: str, keys: dict[str, str]) -> str:
    (kid, pub), = keys.items()
    return (f'[gateway]\nid = "{gid}"\nstate_dir = "{tmp / "city" / gid}"\nheartbeat_s = 30\n'
            f'[mqtt]\nurl = "{url}"\n[trust.hub_keys]\n"{kid}" = "{pub}"\n')
