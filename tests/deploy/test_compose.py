"""docker-compose.yml without Docker: every file it mounts and every variable it uses exists after
`dozor provision init`; every service has a healthcheck and waits on the health of what it needs; then the same
services start natively from the compose file's own commands and the same generated files (Mosquitto on the
generated config, the hub on the generated hub.toml with a real store, Caddy on deploy/caddy/Caddyfile, the sim
city on provisioned bundles) and an exercise goes CLI -HTTPS-> Caddy -> hub -mTLS MQTT-> gateways."""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from simulators.brokers import free_port
from simulators.tsdb import VictoriaMetrics
from tests.deploy.helpers import DOZOR, ROOT, GeneratedBroker, Procs, city_dir, dozor, needs, until

pytestmark = pytest.mark.integration
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}")


def load_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and line[0] != "#")


def interpolate(value, env: dict[str, str], missing: set[str]):
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            name, op, arg = m.groups()
            if name in env:
                return env[name]
            if op == ":-":
                return arg
            missing.add(name)
            return ""
        return VAR.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    return value


def test_every_service_is_healthchecked_and_waits_on_health():
    services = COMPOSE["services"]
    assert set(services) >= {"mosquitto", "influxdb", "grafana", "hub", "caddy", "city"}
    for name, svc in services.items():
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond == {"condition": "service_healthy"}, (name, dep)
    assert "8080" not in json.dumps(services["hub"].get("ports", []))  # the API is reached through Caddy only
    assert services["hub"]["environment"]["INFLUX_TOKEN"] == "${INFLUX_TOKEN}"
    assert not any("1883" in json.dumps(s.get("ports", [])) for s in services.values())  # no plain MQTT


def test_compose_runs_natively_on_the_generated_files(tmp_path):
    needs(bool(shutil.which("caddy")), "caddy is not installed (./run deps installs it)")
    root, port, api = city_dir(), free_port(), free_port()
    https, http = free_port(), free_port()
    try:
        with VictoriaMetrics() as vm:
            dozor("provision", "init", str(root), "--broker-host", "127.0.0.1", "--port", str(port), "--bind",
                  "127.0.0.1", "--api-port", str(api), "--hub-state-dir", str(tmp_path / "hub-state"),
                  "--store-url", vm.url)
            for n in (1, 2, 3):
                dozor("provision", "gateway", f"gw-{n:04d}", "--zone", "sim", str(root))
            env = load_env(root / "compose.env")
            missing: set[str] = set()
            services = interpolate(COMPOSE["services"], env, missing)
            assert missing == set(), f"compose variables not in compose.env: {missing}"
            for name, svc in services.items():
                for vol in svc.get("volumes", []):
                    src = vol.split(":")[0]
                    if src.startswith(("/", "./")):
                        assert (ROOT / src if src.startswith("./") else Path(src)).exists(), (name, vol)
            with GeneratedBroker(root, port) as broker, Procs(tmp_path) as procs:
                assert services["mosquitto"]["command"] == ["mosquitto", "-c", str(broker.city / "broker" /
                                                                                    "mosquitto.conf")]
                hub_cmd = services["hub"]["command"]
                procs.start("hub", *hub_cmd[1:], env=services["hub"]["environment"])
                health = [sys.executable if a == "python" else a.replace("8080", str(api))
                          for a in services["hub"]["healthcheck"]["test"][1:]]
                until(lambda: subprocess.run(health, capture_output=True).returncode == 0, "hub healthcheck",
                      procs=procs)
                data = tmp_path / "caddy"
                with open(tmp_path / "caddy.log", "ab") as fh:
                    caddy = subprocess.Popen(
                        ["caddy", "run", "--config", str(ROOT / "deploy/caddy/Caddyfile"), "--adapter", "caddyfile"],
                        stdout=fh, stderr=fh, env={**os.environ, "DOZOR_PUBLIC_HOST": "localhost",
                                                   "DOZOR_HTTPS_PORT": str(https), "DOZOR_HTTP_PORT": str(http),
                                                   "DOZOR_HUB_UPSTREAM": f"127.0.0.1:{api}",
                                                   "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(data),
                                                   "HOME": str(data)})
                try:
                    ca = data / "caddy/pki/authorities/local/root.crt"
                    url = f"https://localhost:{https}"

                    def tls():
                        return ssl.create_default_context(cafile=str(ca))

                    until(lambda: ca.exists() and httpx.get(f"{url}/healthz", verify=tls()).status_code == 200,
                          "the hub through Caddy over HTTPS", procs=procs)
                    city = [str(tmp_path / "city") if a == "/tmp/city" else a for a in services["city"]["command"]]
                    procs.start("city", *city[1:])
                    token = (root / "hub" / "admin-token").read_text().strip()
                    client = httpx.Client(base_url=url, verify=tls(), headers={"Authorization": f"Bearer {token}"})
                    until(lambda: sorted(g["id"] for g in client.get("/api/v1/gateways").json()
                                         if g["state"] == "online") == ["gw-0001", "gw-0002", "gw-0003"],
                          "the provisioned sim city online at the hub", procs=procs)
                    out = subprocess.run(
                        [DOZOR, "alert", "start", "--zone", "sim", "--signal", "air-raid", "--exercise",
                         "--duration", "30", "--wait", "30", "--json"], capture_output=True, text=True, timeout=120,
                        env={**os.environ, "DOZOR_HUB_URL": url, "DOZOR_TOKEN_FILE": str(root / "hub/admin-token"),
                             "SSL_CERT_FILE": str(ca)})
                    assert out.returncode == 0, out.stdout + out.stderr
                    alert = json.loads(out.stdout)
                    assert alert["mode"] == "exercise" and alert["summary"]["confirmed"] == 9
                    assert httpx.get(f"http://127.0.0.1:{api}/healthz").status_code == 200  # (plain only on loopback)
                finally:
                    caddy.terminate()
                    caddy.wait(10)
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def test_the_hub_trusts_exactly_caddys_fixed_compose_address(tmp_path):
    """Behind Caddy every client reaches the hub from Caddy's address: unless the hub believes Caddy's
    X-Forwarded-For, ten strangers' failed logins would lock every operator out, and 120 residents a minute would
    use up the whole city's live-page limit. The compose hub config names Caddy, and nothing else, as a proxy."""
    import ipaddress
    import tomllib

    from dozor.provision.templates import COMPOSE_CADDY_ADDRESS, hub_toml
    from hub.config import parse_config

    caddy = COMPOSE["services"]["caddy"]["networks"]["default"]["ipv4_address"]
    subnet = COMPOSE["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert caddy == COMPOSE_CADDY_ADDRESS and ipaddress.ip_address(caddy) in ipaddress.ip_network(subnet)
    for svc in ("hub", "mosquitto", "influxdb", "grafana", "city"):  # nothing else is pinned to Caddy's address
        assert caddy not in json.dumps(COMPOSE["services"][svc])
    kw = {"broker_url": "mqtts://mq:8883", "state_dir": tmp_path, "api_port": 8080, "store_url": ""}
    compose = parse_config(tomllib.loads(hub_toml(api_host="0.0.0.0", **kw)), base=tmp_path)
    assert compose.hub.trusted_proxies == ("127.0.0.1", "::1", caddy)
    local = parse_config(tomllib.loads(hub_toml(api_host="127.0.0.1", **kw)), base=tmp_path)
    assert local.hub.trusted_proxies == ("127.0.0.1", "::1")  # the systemd path: Caddy on the same machine
