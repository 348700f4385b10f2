"""Fixtures: simulated sirens on a pty link and a gateway (devices + executor, no MQTT) wired to them."""

from __future__ import annotations

import pytest

from gateway.app import Gateway
from tests.gateway.helpers import AckLog, SirenRig, make_config


@pytest.fixture
async def rig(tmp_path):
    async with SirenRig(tmp_path, 2, spinup_s=0.0) as r:
        yield r


@pytest.fixture
async def gw(tmp_path, rig):
    cfg = make_config(tmp_path, buses={rig.name: str(rig.port)}, sirens=rig.devices())
    acks = AckLog()
    async with Gateway(cfg) as g:
        g.ack_listeners.append(acks)
        g.acks = acks
        yield g
