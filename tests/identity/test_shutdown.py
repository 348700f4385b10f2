"""SIGTERM always stops the hub: `docker compose down` or a host shutdown stops the broker and the hub at the
same moment. The hub once swallowed its own cancellation while tearing down the MQTT session the dying broker
had just closed, and kept reconnecting until a second SIGTERM (found by a new-user walkthrough)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from simulators.brokers import Mosquitto, free_port
from tests.identity.helpers import cli, hub_process

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("order", ["together", "broker_first", "hub_only"])
async def test_one_sigterm_stops_the_hub_whatever_the_broker_does(tmp_path, order):
    port = free_port()
    with Mosquitto() as broker:
        rc, _, err = await cli("hub", "init", str(tmp_path / "city"), "--broker", broker.url,
                               "--listen", f"127.0.0.1:{port}")
        assert rc == 0, err
        async with hub_process(tmp_path / "city" / "hub.toml", port, tmp_path / "hub.log") as proc:
            await asyncio.sleep(1.0)  # both MQTT sessions are up (healthz answered after connect)
            if order == "broker_first":
                broker.proc.terminate()
                await asyncio.sleep(0.5)
            os.kill(proc.pid, signal.SIGTERM)
            if order == "together":
                broker.proc.terminate()
            # a protocol deadline, not a speed claim: every shutdown step is bounded well below it
            rc = await asyncio.wait_for(proc.wait(), 30)
    log = (tmp_path / "hub.log").read_text()
    assert rc == 0, log[-2000:]
    assert "hub stopped" in log
