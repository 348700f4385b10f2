"""A field node from the technician's flash to the hub's node list, with real parts only: the virtual board
(the real MicroPython interpreter running the flashed noise firmware), its gateway UART on a pty, a real
``gateway.app.Gateway`` with a noise_node driver on that pty, a real Mosquitto, a real hub, and the `dozor`
CLI as a technician and an operator run it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from dozor.client import HubClient
from firmware.tools.build import build
from gateway.app import Gateway
from hub.models import NodeRegistration
from simulators.board import VirtualBoard
from simulators.brokers import free_port
from tests.gateway.helpers import make_config as gateway_config
from tests.gwident import enroll_gateway
from tests.hub.helpers import eventually, hub_token, make_config, running_hub

pytestmark = pytest.mark.integration
DOZOR = str(Path(sys.executable).with_name("dozor"))
NODE = "N-E2E"


@pytest.fixture(scope="module")
def noise_build(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("build") / "noise"
    build("noise", d)
    return d


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(DOZOR, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


async def test_flashed_node_reaches_gateway_and_hub(mosquitto, tmp_path, noise_build):
    (tmp_path / "hub").mkdir()
    hub_cfg = make_config(tmp_path / "hub", mosquitto.port)  # no [firmware]: the version in firmware/src/version.py
    link = tmp_path / "node-link"
    extra = (f'[[bus]]\nname = "uart-node"\nport = "{link}"\nkind = "uart"\nbaudrate = 115200\nreopen_s = 0.1\n'
             f'[[device]]\nid = "{NODE}"\nkind = "noise_node"\nbus = "uart-node"\nstale_s = 5\n')
    gw_cfg = gateway_config(tmp_path, mqtt_url=mosquitto.url, extra=extra, heartbeat_s=0.5)
    async with running_hub(hub_cfg) as hub:
        url = f"http://127.0.0.1:{hub_cfg.hub.api_port}"
        env = {"DOZOR_HUB_URL": url, "DOZOR_TOKEN": hub_token(hub)}
        with VirtualBoard(tmp_path / "flash", uart_link=link) as board:
            enroll_gateway(gw_cfg.gateway.state_dir, "gw-test")  # its identity key, as `dozor gateways enroll`
            gw = Gateway(gw_cfg)
            gw_task = asyncio.create_task(gw.run())
            try:
                await eventually(lambda: hub.registry.is_online("gw-test"), what="gateway online at the hub")
                drv = gw.devices[NODE]
                assert gw.birth(1).devices[0].fw is None  # the node has not spoken yet

                # the technician flashes the node and registers it with the hub (DOZOR_HUB_URL / DOZOR_TOKEN)
                code, out, err = await cli("firmware", "flash", "--port", board.port, "--node", "noise", "--id", NODE,
                                           "--zone", "Z1", "--build", str(noise_build), "--lat", "50.4501",
                                           "--lon", "30.5234", "--json", env=env)
                assert code == 0, out + err
                flashed = json.loads(out)
                key = json.loads((tmp_path / "flash" / "config.json").read_text())["key"]
                assert flashed["hub"]["key_sha256"] == hashlib.sha256(bytes.fromhex(key)).hexdigest()
                assert key not in out + err  # the key itself never leaves the laptop

                # the running firmware's frames: STATUS at boot, LEVELS every second -> gateway -> hub
                await eventually(lambda: drv.node is not None and drv.readings >= 3, what="STATUS and LEVELS")
                assert (drv.node.fw, drv.node.boot_count, drv.node.error_bits) == ("1.0", 1, 0)
                latest = await eventually(lambda: [d for d in hub.latest.latest(gateway="gw-test") if d.device == NODE],
                                          what="node readings at the hub")
                assert abs(latest[0].value("laeq") - 74.0) < 0.5  # the board's 1 kHz test tone at 74 dB SPL
                # the STATUS firmware shows in the birth (re-published) and in the heartbeats
                assert gw.birth(1).devices[0].fw == "1.0"
                await eventually(lambda: hub.registry.gateways["gw-test"].devices[NODE].fw == "1.0",
                                 what="re-announced birth at the hub")
                detail = (await gw.device_statuses())[0].detail
                assert detail == "fw 1.0 boots 1 errors 0x0000"

                # the operator lists the hub's devices and nodes
                await eventually(lambda: hub.nodes.nodes[NODE].boot_count == 1, what="heartbeat detail at the hub")
                code, out, err = await cli("devices", "--json", env=env)
                assert code == 0, err
                (dev,) = [d for d in json.loads(out) if d["id"] == NODE]
                assert (dev["kind"], dev["fw"], dev["detail"]) == ("noise_node", "1.0", "fw 1.0 boots 1 errors 0x0000")
                code, out, err = await cli("firmware", "nodes", "--json", env=env)
                assert code == 0, err
                (node,) = json.loads(out)
                assert (node["id"], node["kind"], node["zone"], node["gateway"], node["fw"], node["reported_fw"],
                        node["boot_count"], node["error_bits"], node["state"], node["outdated"]) == (
                    NODE, "noise", "Z1", "gw-test", "1.0.0", "1.0", 1, 0, "idle", False)
                assert (node["lat"], node["lon"]) == (50.4501, 30.5234) and node["provisioned_by"]

                # a node provisioned with an older firmware is listed as out of date
                def register_old() -> None:
                    with HubClient(url, hub_token(hub)) as c:
                        c.register_node(NodeRegistration(id="N-OLD", kind="air", zone="Z1", fw="0.9.0"))
                await asyncio.to_thread(register_old)
                code, out, err = await cli("firmware", "nodes", "--outdated", "--json", env=env)
                assert code == 0, err
                assert [(n["id"], n["outdated"], n["current_version"]) for n in json.loads(out)] == [
                    ("N-OLD", True, "1.0.0")]
                code, out, _ = await cli("firmware", "nodes", "--outdated", env=env)
                assert "N-OLD" in out and "OUT OF DATE" in out and NODE not in out

                # reflash with the hub down: the node is flashed and restarts (seq back to 0, survived by the
                # gateway), and the technician gets the distinct exit and a clear message
                readings, resets = drv.readings, drv.stats["seq_reset"]
                code, out, err = await cli("firmware", "flash", "--port", board.port, "--node", "noise", "--id",
                                           NODE, "--zone", "Z1", "--build", str(noise_build), "--hub",
                                           f"http://127.0.0.1:{free_port()}", "--token", hub_token(hub))
                assert code == 6, out + err
                assert "OK: N-E2E (noise node, firmware 1.0.0)" in out
                assert "node flashed and checked, but the hub did not record it: hub not reachable" in " ".join(
                    err.split())
                await eventually(lambda: drv.stats["seq_reset"] > resets and drv.readings >= readings + 2,
                                 what="readings after the node restarted")
                assert drv.node.boot_count == 1  # the flash cleared the boot counter
                assert hub.nodes.nodes[NODE].fw == "1.0.0"  # the failed registration changed nothing
            finally:
                gw_task.cancel()
                await asyncio.gather(gw_task, return_exceptions=True)
    assert gw.counters.get(f"{NODE}.driver_errors") == 0 and gw.counters.get(f"{NODE}.bad_crc") == 0
