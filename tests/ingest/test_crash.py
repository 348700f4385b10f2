"""kill -9 of a `dozor hub run` process mid-stream loses nothing: telemetry is PUBACKed only once its lines
are committed to the hub's SQLite spool, so what the dead hub had not committed comes again from the broker
(persistent ingest session). Without deferred acks the first batches below would be lost."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import httpx
import pytest

from simulators.brokers import free_port, wait_port
from tests.ingest.helpers import ZONES, Publisher, influx_count, noise_batch
from tests.tokens import admin_token

pytestmark = pytest.mark.integration
DOZOR = str(Path(sys.executable).with_name("dozor"))


async def start_hub(toml: Path, api_port: int, log: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(DOZOR, "hub", "run", "--config", str(toml), "--log-level", "WARNING",
                                                stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT)
    await asyncio.to_thread(wait_port, api_port, 30)
    return proc


async def health(api_port: int) -> dict:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(f"http://127.0.0.1:{api_port}/healthz")).json()


async def until(api_port: int, pred, what: str, limit_s: float = 30.0) -> dict:
    """Poll /healthz until pred(health); the limit only bounds a failing test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    h = await health(api_port)
    while not pred(h):
        assert loop.time() < deadline, f"timed out waiting for {what}: {h}"
        await asyncio.sleep(0.05)
        h = await health(api_port)
    return h


async def test_kill_9_mid_stream_loses_nothing(mosquitto, influx1, tmp_path):
    api_port = free_port()
    (tmp_path / "zones.json").write_text(json.dumps(ZONES))
    toml = tmp_path / "hub.toml"
    toml.write_text(f'[hub]\nstate_dir = "state"\napi_port = {api_port}\nzones = "zones.json"\n'
                    f'[mqtt]\nurl = "mqtt://127.0.0.1:{mosquitto.port}"\nclient_id = "crash-hub"\n'
                    f'[store]\nkind = "v1"\nurl = "{influx1.url}"\ndatabase = "{influx1.database}"\n'
                    'flush_interval_s = 30\ncommit_delay_s = 10\n')  # no commit by the clock before the kill
    log = tmp_path / "hub.log"
    pub = Publisher(mosquitto.port)
    admin_token(tmp_path / "state")  # a hub refuses to start without users
    hub = await start_hub(toml, api_port, log)
    try:
        await until(api_port, lambda h: h.get("mqtt_ingest"), "ingest connection")
        await asyncio.to_thread(pub.batches, [noise_batch("gw-n1", seq, 30, session=7) for seq in range(10)])
        await until(api_port, lambda h: h["ingest"].get("ingest.batches", 0) >= 10, "10 batches")
        h = await health(api_port)
        assert h["ingest"]["acks_waiting"] == 10 and h["ingest"].get("spool.spooled_lines", 0) == 0
        hub.send_signal(signal.SIGKILL)
        await hub.wait()
        await asyncio.to_thread(pub.batches, [noise_batch("gw-n1", seq, 30, session=7) for seq in range(10, 40)])
        hub = await start_hub(toml, api_port, log)
        # the 10 the dead hub never acked come again, then the 30 published while it was down
        await until(api_port, lambda h: h["ingest"].get("ingest.batches", 0) >= 40, "all 40 after restart")
        hub.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(hub.wait(), 30) == 0
    finally:
        pub.close()
        if hub.returncode is None:
            hub.kill()
            await hub.wait()
    count = await asyncio.to_thread(influx_count, influx1,
                                    "SELECT count(laeq) FROM noise_node WHERE gateway = 'gw-n1' AND time > 0")
    assert count == 40 * 30, log.read_text()[-2000:]
