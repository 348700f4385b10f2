"""The commands and config of docs/operations.md "Two hubs, one city (PostgreSQL)", run as written (each machine's
folder, address and port of this test substituted, and loopback in place of 0.0.0.0): two `dozor hub run` processes
on a real PostgreSQL and a real Mosquitto, and the operator's `dozor alert start` through the follower."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib

import httpx

from contract.command import public_key_from_b64
from contract.models import DeviceKind
from hub.config import load_config
from hub.gwtrust import enroll
from hub.keys import KEY_FILE, RING_FILE
from simulators.brokers import free_port, wait_port
from simulators.procs import stop_processes
from tests.gwident import public_b64
from tests.hub.fakegw import FakeGateway
from tests.identity.helpers import DOZOR
from tests.identity.test_docs import ROOT, commands
from tests.repo.test_failover import wait_text
from tests.repo.test_hub_postgres import start
from tests.repo.test_migrate import dozor
from tests.tokens import record

HEADING = "### Two hubs, one city (PostgreSQL)"
DOC_URL = "http://10.0.0.2:8080"


def doc_toml() -> dict:
    text = (ROOT / "docs/operations.md").read_text()
    return tomllib.loads(re.search(r"```toml\n(.*?)```", text[text.index(HEADING):], re.S).group(1))


def dump(doc: dict) -> str:
    return "".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
                   for name, table in doc.items())


async def test_documented_two_hub_setup_runs(postgres_server, mosquitto, tmp_path):
    lines = commands("docs/operations.md", HEADING)
    assert [shlex.split(c)[1:3] for c in lines] == [["hub", "run"], ["alert", "start"]]
    ports = free_port(), free_port()
    url = postgres_server.database()
    dirs = [tmp_path / "machine-a", tmp_path / "machine-b"]
    documented = doc_toml()
    assert documented["mqtt"]["share_group"] and documented["hub"]["advertise_url"] == DOC_URL
    for d, port in zip(dirs, ports, strict=True):
        d.mkdir()
        (d / "zones.json").write_text(json.dumps([{"id": "all", "name": "All", "gateways": ["gw-a"]}]))
        doc = json.loads(json.dumps(documented))
        doc["hub"].update(state_dir=str(d / "state"), zones="zones.json", api_port=port, api_host="127.0.0.1",
                          advertise_url=f"http://127.0.0.1:{port}", leader_lease_s=2)
        doc["mqtt"]["url"] = mosquitto.url
        doc["database"] = {"url": url, "password_file": str(postgres_server.password_file)}
        (d / "hub.toml").write_text(dump(doc))
    assert dozor("hub", "migrate", "--config", str(dirs[0] / "hub.toml")).returncode == 0
    added = dozor("users", "add", "olena", "--role", "operator", "--config", str(dirs[0] / "hub.toml"), "--json")
    token = record(json.loads(added.stdout)["token"])
    enroll(load_config(dirs[0] / "hub.toml").backend(), "gw-a", public_b64("gw-a"), actor="test")
    procs, logs, fake = [], [d / "hub.log" for d in dirs], None
    run = shlex.split(lines[0])[1:]
    try:
        for d, port, log in zip(dirs, ports, logs, strict=True):
            procs.append(start(run[run.index("--config") + 1].replace("/etc/dozor", str(d)), log))
            wait_port(port, timeout=30)
            if d is dirs[0]:
                (dirs[1] / "state").mkdir()
                for name in (KEY_FILE, RING_FILE):  # the documented copy of the signing key
                    if (d / "state" / name).exists():
                        shutil.copy2(d / "state" / name, dirs[1] / "state" / name)
        await wait_text(logs[1], "standby: hub")
        health = (await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{ports[1]}/healthz")).json()
        assert health["role"] == "follower"
        fake = FakeGateway(mosquitto.port, "gw-a", {health["kid"]: public_key_from_b64(health["public_key"])},
                           [("siren-1", DeviceKind.SIREN)]).start()
        await wait_text(logs[0], "gateway gw-a online")
        cli = shlex.split(lines[1].replace(DOC_URL, f"http://127.0.0.1:{ports[1]}")
                          .replace("http://10.0.0.1:8080", f"http://127.0.0.1:{ports[0]}"))[1:]
        assert f"http://127.0.0.1:{ports[1]},http://127.0.0.1:{ports[0]}" in cli  # the follower first
        r = await asyncio.to_thread(subprocess.run, [DOZOR, *cli], capture_output=True, text=True, timeout=60,
                                    env={**os.environ, "DOZOR_TOKEN": token})
        assert r.returncode == 0, (r.stdout, r.stderr)
        alert_id = r.stdout.strip()
        alerts = (await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{ports[0]}/api/v1/alerts",
                                          headers={"Authorization": f"Bearer {token}"})).json()
        assert [(a["id"], a["requested_by"]["name"]) for a in alerts] == [(alert_id, "olena")]
        await wait_text(logs[0], "-ingest-")  # both hubs ingest through the shared group
        await wait_text(logs[1], "-ingest-")
    finally:
        if fake is not None:
            fake.stop()
        stop_processes(procs, grace_s=20)
