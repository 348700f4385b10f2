"""Shared telemetry ingest (issue 14 §2): two `dozor hub run` processes on one PostgreSQL, both subscribed through
the MQTT shared subscription group `[mqtt] share_group` on a real Mosquitto. The broker splits the telemetry
between them (the leader and the follower both ingest), and a real VictoriaMetrics stores every reading exactly
once: produced == stored, and the two instances' batch counts add up to what was sent."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from simulators.brokers import free_port, wait_port
from simulators.procs import stop_processes
from simulators.tsdb import VictoriaMetrics
from tests.hub.helpers import eventually
from tests.ingest.helpers import NOISE, Publisher, noise_batch, vm_samples
from tests.repo.test_failover import wait_text
from tests.repo.test_hub_postgres import start
from tests.repo.test_migrate import dozor, pg_section

pytestmark = pytest.mark.integration
GATEWAYS = ("gw-n1", "gw-n2", "gw-s1")
BATCHES, READINGS = 60, 5  # per gateway; every reading carries len(NOISE) metrics


def shared_config(tmp, name: str, port: int, broker_url: str, vm: VictoriaMetrics, database: str) -> str:
    (tmp / "zones.json").write_text(json.dumps([{"id": "all", "gateways": list(GATEWAYS)}]))
    path = tmp / f"{name}.toml"
    path.write_text(f'[hub]\nstate_dir = "state-{name}"\nzones = "zones.json"\napi_port = {port}\n'
                    'flush_interval_s = 0.05\nleader_lease_s = 2\n'
                    f'[mqtt]\nurl = "{broker_url}"\nclient_id = "hub-ha"\nshare_group = "hubs"\n'
                    f'[store]\nkind = "v2"\nurl = "{vm.url}"\ndatabase = "dozor"\nflush_interval_s = 0.05\n'
                    f'spool = "state-{name}/spool.sqlite"\n' + database)
    return str(path)


@pytest.fixture
def vm():
    with VictoriaMetrics() as store:
        yield store


async def test_two_hubs_split_the_telemetry_and_store_it_exactly_once(postgres_server, mosquitto, vm, tmp_path):
    database = pg_section(postgres_server, postgres_server.database())
    ports = free_port(), free_port()
    procs, logs = [], [tmp_path / "a.log", tmp_path / "b.log"]
    pub = None
    try:
        cfgs = [shared_config(tmp_path, n, p, mosquitto.url, vm, database) for n, p in zip("ab", ports, strict=True)]
        assert dozor("hub", "migrate", "--config", cfgs[0]).returncode == 0
        assert dozor("users", "add", "boss", "--role", "admin", "--config", cfgs[0]).returncode == 0
        for cfg, log, port in zip(cfgs, logs, ports, strict=True):
            procs.append(start(cfg, log))
            wait_port(port, timeout=30)
        await wait_text(logs[1], "standby: hub")
        for log in logs:  # leader and follower alike hold an ingest connection in the shared group
            await wait_text(log, "-ingest-")
        pub = Publisher(mosquitto.port)
        batches = [noise_batch(gw, seq, READINGS) for gw in GATEWAYS for seq in range(BATCHES)]
        await asyncio.to_thread(pub.batches, batches)
        produced = len(batches) * READINGS * len(NOISE)

        async def health(port: int) -> dict:
            async with httpx.AsyncClient(timeout=10) as http:
                return (await http.get(f"http://127.0.0.1:{port}/healthz")).json()

        async def all_written() -> bool:
            got = [(await health(p))["ingest"] for p in ports]
            return sum(h.get("ingest.batches", 0) for h in got) == len(batches) and \
                all(h.get("spool.pending_lines", 1) == 0 and h.get("buffered_lines", 1) == 0 for h in got)
        for _ in range(600):
            if await all_written():
                break
            await asyncio.sleep(0.05)
        got = [(await health(p)) for p in ports]
        assert [h["role"] for h in got] == ["leader", "follower"]
        per_instance = [h["ingest"].get("ingest.batches", 0) for h in got]
        assert sum(per_instance) == len(batches) and min(per_instance) > 0, per_instance  # split, none twice
        assert sum(h["ingest"].get("ingest.duplicate_batches", 0) for h in got) == 0
        match = '{__name__=~"noise_node_.*",gateway=~"gw-n1|gw-n2|gw-s1"}'
        await eventually(lambda: vm_samples(vm, match) >= produced, 30, what="every reading stored")
        await asyncio.sleep(1.0)  # a late duplicate would show up as more than produced
        assert await asyncio.to_thread(vm_samples, vm, match) == produced
    finally:
        if pub is not None:
            pub.close()
        stop_processes(procs, grace_s=20)
        for log in logs:
            if log.exists():
                print(log.name, log.read_text()[-1500:])
