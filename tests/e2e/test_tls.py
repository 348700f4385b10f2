"""The alert path over MQTT with TLS: hub and gateways verify the broker's certificate against the CA."""

from __future__ import annotations

import asyncio
import json

import pytest

from contract.codecs import siren_modbus as sm
from dozor.commands.sim_city import enrolling_factory
from hub.app import Hub
from hub.config import parse_config
from hub.models import AlertRequest
from simulators.brokers import Mosquitto, free_port
from simulators.city import City, CityPlan
from tests.tokens import admin_token

pytestmark = pytest.mark.integration


async def test_alert_over_tls_is_confirmed_by_every_siren(tmp_path):
    plan = CityPlan(gateways=2, sirens_per_gateway=2)
    (tmp_path / "zones.json").write_text(json.dumps(plan.zones_config()))
    with Mosquitto(tls=True) as broker:
        ca = str(broker.pki["ca"])
        assert broker.url.startswith("mqtts://")
        cfg = parse_config({"hub": {"state_dir": "hub", "api_port": free_port(), "zones": "zones.json",
                                    "confirm_deadline_s": 3},
                            "mqtt": {"url": broker.url, "ca_file": ca}}, base=tmp_path)
        admin_token(cfg.hub.state_dir)
        hub = Hub(cfg)
        task = asyncio.create_task(hub.run())
        try:
            await asyncio.wait_for(hub.mqtt.connected.wait(), 15)
            async with City(plan, broker.url, {hub.keys.kid: hub.keys.public_b64}, tmp_path / "city",
                            enrolling_factory(cfg.hub.state_dir), spinup_s=0, heartbeat_s=1, mqtt_options={"ca_file": ca}) as city:
                for _ in range(300):
                    if all(hub.registry.is_online(g) for g in plan.gateway_ids()):
                        break
                    await asyncio.sleep(0.05)
                alert = await hub.engine.start(AlertRequest(zones=[plan.zone_id(0)], signal="air-raid",
                                                            mode="exercise", duration_s=30))
                for _ in range(300):
                    if sum(s.sounding for s in city.sirens()) == plan.sirens_total:
                        break
                    await asyncio.sleep(0.05)
                assert sum(s.sounding for s in city.sirens()) == plan.sirens_total
                assert all([e.cmd for e in s.log] == [sm.Cmd.ACTIVATE] for s in city.sirens())
                assert alert is not None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
