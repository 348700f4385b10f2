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
import ssl
import subprocess
import tomllib

import httpx

from contract.command import public_key_from_b64
from contract.models import DeviceKind
from hub.config import load_config
from hub.gwtrust import enroll
from hub.keys import KEY_FILE, RING_FILE
from simulators.brokers import free_port, make_test_pki, wait_port
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
DOC_URL = "https://10.0.0.2:8443"
OTHER_URL = "https://10.0.0.1:8443"


def doc_toml() -> dict:
    text = (ROOT / "docs/operations.md").read_text()
    return tomllib.loads(re.search(r"```toml\n(.*?)```", text[text.index(HEADING):], re.S).group(1))


def dump(doc: dict) -> str:
    return "".join(f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
                   for name, table in doc.items())


def split_env(line: str) -> tuple[dict[str, str], list[str]]:
    """``VAR=value dozor ...`` -> ({VAR: value}, ["dozor", ...])."""
    words = shlex.split(line)
    at = words.index("dozor")
    return dict(w.split("=", 1) for w in words[:at]), words[at:]


async def test_documented_two_hub_setup_runs(postgres_server, mosquitto, tmp_path):
    lines = commands("docs/operations.md", HEADING)
    assert [split_env(c)[1][1:3] for c in lines] == [["hub", "run"], ["alert", "start"]]
    pki = make_test_pki(tmp_path)  # the documented /etc/dozor/tls: a CA, and one certificate for 127.0.0.1
    pki["key"].chmod(0o600)
    tls_files = {"/etc/dozor/tls/hub.crt": str(pki["cert"]), "/etc/dozor/tls/hub.key": str(pki["key"]),
                 "/etc/dozor/tls/ca.crt": str(pki["ca"])}
    verify = ssl.create_default_context(cafile=str(pki["ca"]))
    ports = free_port(), free_port()
    url = postgres_server.database()
    dirs = [tmp_path / "machine-a", tmp_path / "machine-b"]
    documented = doc_toml()
    assert documented["mqtt"]["share_group"] and documented["hub"]["advertise_url"] == DOC_URL
    for d, port in zip(dirs, ports, strict=True):
        d.mkdir()
        (d / "zones.json").write_text(json.dumps([{"id": "all", "name": "All", "gateways": ["gw-a"]}]))
        doc = json.loads(json.dumps(documented))
        assert {doc["hub"][k] for k in ("tls_cert_file", "tls_key_file", "peer_ca_file")} <= set(tls_files)
        doc["hub"].update({k: tls_files[doc["hub"][k]] for k in ("tls_cert_file", "tls_key_file", "peer_ca_file")})
        doc["hub"].update(state_dir=str(d / "state"), zones="zones.json", api_port=port, api_host="127.0.0.1",
                          advertise_url=f"https://127.0.0.1:{port}", leader_lease_s=2)
        doc["mqtt"]["url"] = mosquitto.url
        doc["database"] = {"url": url, "password_file": str(postgres_server.password_file)}
        (d / "hub.toml").write_text(dump(doc))
    assert dozor("hub", "migrate", "--config", str(dirs[0] / "hub.toml")).returncode == 0
    added = dozor("users", "add", "olena", "--role", "operator", "--config", str(dirs[0] / "hub.toml"), "--json")
    token = record(json.loads(added.stdout)["token"])
    enroll(load_config(dirs[0] / "hub.toml").backend(), "gw-a", public_b64("gw-a"), actor="test")
    procs, logs, fake = [], [d / "hub.log" for d in dirs], None
    run = split_env(lines[0])[1][1:]
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
        health = (await asyncio.to_thread(httpx.get, f"https://127.0.0.1:{ports[1]}/healthz", verify=verify)).json()
        assert health["role"] == "follower"
        fake = FakeGateway(mosquitto.port, "gw-a", {health["kid"]: public_key_from_b64(health["public_key"])},
                           [("siren-1", DeviceKind.SIREN)]).start()
        await wait_text(logs[0], "gateway gw-a online")
        cli_env, cli = split_env(lines[1].replace(DOC_URL, f"https://127.0.0.1:{ports[1]}")
                                 .replace(OTHER_URL, f"https://127.0.0.1:{ports[0]}"))
        assert f"https://127.0.0.1:{ports[1]},https://127.0.0.1:{ports[0]}" in cli  # the follower first
        cli_env = {k: tls_files[v] for k, v in cli_env.items()}  # SSL_CERT_FILE: the operator trusts the CA
        r = await asyncio.to_thread(subprocess.run, [DOZOR, *cli[1:]], capture_output=True, text=True, timeout=60,
                                    env={**os.environ, "DOZOR_TOKEN": token, **cli_env})
        assert r.returncode == 0, (r.stdout, r.stderr)
        alert_id = r.stdout.strip()
        alerts = (await asyncio.to_thread(httpx.get, f"https://127.0.0.1:{ports[0]}/api/v1/alerts", verify=verify,
                                          headers={"Authorization": f"Bearer {token}"})).json()
        assert [(a["id"], a["requested_by"]["name"]) for a in alerts] == [(alert_id, "olena")]
        await wait_text(logs[0], "-ingest-")  # both hubs ingest through the shared group
        await wait_text(logs[1], "-ingest-")
    finally:
        if fake is not None:
            fake.stop()
        stop_processes(procs, grace_s=20)
