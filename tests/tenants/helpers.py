"""Two cities on one broker: hub processes of named tenants (real `dozor hub run`, SQLite state each), their users
and enrolled gateways."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from hub.gwtrust import enroll
from simulators.brokers import free_port, wait_port
from tests.gwident import public_b64
from tests.identity.helpers import DOZOR
from tests.repo.test_migrate import dozor
from tests.tokens import record


@dataclass
class City:
    tenant: str
    config: Path
    port: int
    token: str
    proc: subprocess.Popen
    log: Path

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=10,
                                 headers={"Authorization": f"Bearer {token or self.token}"})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_city(tmp: Path, tenant: str, broker_url: str, gateways: list[str], *, enrolled: list[str] | None = None,
               extra: str = "") -> City:
    """A hub of ``tenant`` (zone ``center`` = ``gateways``) with an operator ``op`` and ``enrolled`` gateways."""
    folder = tmp / tenant
    folder.mkdir()
    (folder / "zones.json").write_text(json.dumps([{"id": "center", "name": "Center", "gateways": gateways}]))
    port = free_port()
    config = folder / "hub.toml"
    config.write_text(f'[hub]\ntenant = "{tenant}"\nstate_dir = "state"\nzones = "zones.json"\napi_port = {port}\n'
                      'confirm_deadline_s = 1.0\nflush_interval_s = 0.05\naudit_anchor_interval_s = 0.5\n'
                      f'[mqtt]\nurl = "{broker_url}"\nclient_id = "hub-{tenant}"\n' + extra)
    r = dozor("users", "add", "op", "--role", "operator", "--config", str(config), "--json")
    assert r.returncode == 0, r.stderr
    token = record(json.loads(r.stdout)["token"])
    for gw in enrolled if enrolled is not None else gateways:
        enroll(folder / "state", gw, public_b64(gw), actor="test")
    log = folder / "hub.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen([DOZOR, "hub", "run", "--config", str(config)], stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=30)
    except Exception:
        proc.kill()
        raise AssertionError(f"hub {tenant} did not start: {log.read_text()[-2000:]}") from None
    return City(tenant, config, port, token, proc, log)
