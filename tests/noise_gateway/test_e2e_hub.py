"""End to end with the real hub: a gateway's microphone hears a loud exhaust; the hub learns the gateway's
evidence key from its birth, verifies the signed record and keeps it as an enforceable candidate."""

from __future__ import annotations

import pytest

from contract import command as cc
from gateway.devices import microphone
from hub.violations.register import Filters
from simulators.noise_scene import SceneMicrophone
from tests.gwident import enroll_gateway
from tests.hub.helpers import eventually, make_config, running_hub
from tests.noise_gateway.helpers import ONE_EXHAUST_SEED, ZONE, config, running, scene

pytestmark = pytest.mark.integration


async def test_hub_verifies_the_gateways_evidence_with_the_key_from_its_birth(tmp_path, mosquitto, monkeypatch):
    sc = scene(ONE_EXHAUST_SEED, 24.0, exhaust=1)
    mic = SceneMicrophone(sc, speed=10.0)
    monkeypatch.setattr(microphone, "stream_factory", mic.stream_factory)
    (tmp_path / "hub").mkdir()
    hub_cfg = make_config(tmp_path / "hub", mosquitto.port,
                          zones=[{"id": ZONE, "name": "Zone 1", "gateways": ["gw-test"]}])
    gw_cfg = config(tmp_path, mosquitto.url)
    enroll_gateway(gw_cfg.gateway.state_dir, "gw-test", [hub_cfg.hub.state_dir])  # `dozor gateways enroll`
    async with running_hub(hub_cfg) as hub, running(gw_cfg) as gw:
        rows = await eventually(lambda: hub.violations.list(Filters(gateway="gw-test")), limit_s=30.0,
                                what="the pass-by in the hub's register")
    assert len(rows) == 1
    row = rows[0]
    assert row["signature"] == "verified" and row["kid"] == gw.evidence.kid
    assert row["kid"] == cc.key_id(cc.public_key_from_b64(gw.birth(1).evidence_key))
    assert row["class"] == "exhaust" and row["enforceable"] and not row["suppressed"]
    assert row["zone"] == ZONE and row["sensor"] == "mic-1"
