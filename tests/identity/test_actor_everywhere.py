"""The actor (user and role) of each alert action reaches the audit chain, the signed command (a claim the real
gateway logs) and the CAP message's senderName."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx

from contract.command import verify_command
from dozor.commands.sim_city import enrolling_factory, hub_keys_from
from simulators.city import City, CityPlan
from tests.hub.helpers import eventually, make_config, running_hub
from tests.tokens import add_user


async def test_the_actor_is_in_the_audit_the_commands_and_cap(mosquitto, tmp_path, caplog, token_leak_scanner):
    caplog.set_level(logging.INFO, logger="dozor.gateway")
    plan = CityPlan(gateways=1, sirens_per_gateway=1)
    cfg = make_config(tmp_path, mosquitto.port, zones=plan.zones_config())
    alice = add_user(cfg.hub.state_dir, "alice", "operator")
    bob = add_user(cfg.hub.state_dir, "bob", "supervisor")
    zone = plan.zones_config()[0]["id"]
    async with running_hub(cfg) as hub:
        sent: list[bytes] = []
        publish = hub.mqtt.publish_nowait

        def spy(topic, payload, *a, **kw):
            if "/cmd" in topic:
                sent.append(payload)
            return publish(topic, payload, *a, **kw)

        hub.engine.publish_nowait = spy
        city = await City(plan, mosquitto.url, hub_keys_from(cfg.hub.state_dir, []), tmp_path / "city",
                          enrolling_factory(cfg.hub.state_dir), spinup_s=0.05, heartbeat_s=1.0).start()
        try:
            await eventually(lambda: hub.registry.devices_of(plan.zones_config()[0]["gateways"][0]), what="birth")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cfg.hub.api_port}", timeout=10) as http:
                r = await http.post("/api/v1/alerts", json={"zones": [zone], "signal": "air-raid", "mode": "exercise",
                                                            "duration_s": 60},
                                    headers={"Authorization": f"Bearer {alice}"})
                assert r.status_code == 201, r.text
                alert = r.json()
                assert alert["requested_by"] == {"name": "alice", "role": "operator", "via": "token"}
                await eventually(lambda: hub.engine.alerts[alert["id"]].summary().confirmed == 1, what="sounding")
                r = await http.post(f"/api/v1/alerts/{alert['id']}/all-clear",
                                    headers={"Authorization": f"Bearer {bob}"})
                assert r.json()["acted_by"]["name"] == "bob"
                await eventually(lambda: len(sent) >= 2, what="the all-clear command")
                feed = (await http.get("/cap/feed.xml")).text
                caps = [(await http.get(f"/cap/{alert['id']}.v{v}.xml")).text for v in (1, 2)]
            # the signed commands name who ordered them
            keys = hub.keys.verification_keys()
            claims = [verify_command(p, keys=keys, audience=plan.zones_config()[0]["gateways"][0],
                                     now=time.time()) for p in sent]
            assert [c.by for c in claims[:1]] == ["alice (operator)"] and claims[-1].by == "bob (supervisor)"
            await asyncio.sleep(0)
            assert any("by alice (operator)" in r.getMessage() for r in caplog.records if r.name.startswith("dozor.gateway"))
            assert any("by bob (supervisor)" in r.getMessage() for r in caplog.records if r.name.startswith("dozor.gateway"))
        finally:
            await city.stop()
        # CAP: senderName names the person in their role; <sender> stays the authority (references need it)
        assert "<senderName>dozor — alice (operator)</senderName>" in caps[0]
        assert "<senderName>dozor — bob (supervisor)</senderName>" in caps[1]
        assert alert["id"] in feed
        # the audit chain
        recs = [(r.action, r.actor["name"], r.actor["role"]) for r in hub.audit.records(subject=alert["id"])]
        assert recs[:2] == [("alert.start", "alice", "operator"), ("alert.all_clear", "bob", "supervisor")]
        assert json.loads(json.dumps(recs))  # plain data
