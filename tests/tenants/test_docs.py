"""docs/operations.md, "Several cities on one deployment": the documented commands run as written (folder, state
dirs and ports of this test substituted) on a provisioned folder, the tenant's hub runs on the generated config
against the generated broker (mutual TLS, the tenant ACL), and deploy/caddy/Caddyfile.tenants sends each city's
host name to its own hub (real Caddy)."""

from __future__ import annotations

import os
import shlex
import shutil
import ssl
import subprocess
import time

import httpx
import pytest

from simulators.brokers import free_port, wait_port
from tests.deploy.helpers import DOZOR, ROOT, GeneratedBroker, city_dir, connect, dozor
from tests.grafana.fake_grafana import FakeGrafana
from tests.identity.test_docs import commands

pytestmark = pytest.mark.integration
HEADING = "## Several cities on one deployment (tenants)"


def until(pred, what: str, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s  # only bounds a failing test
    while True:
        try:
            if pred():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_documented_second_city_runs_behind_its_own_host(tmp_path):
    if not shutil.which("caddy"):
        pytest.fail("caddy is not installed (./run deps installs it)")
    root, port, api, tenant_api, https, http = city_dir(), *(free_port() for _ in range(5))
    procs: list[subprocess.Popen] = []
    env = {**os.environ, "INFLUX_TOKEN": "unused-here"}
    try:
        dozor("provision", "init", str(root), "--broker-host", "127.0.0.1", "--port", str(port), "--bind",
              "127.0.0.1", "--api-port", str(api), "--hub-state-dir", str(tmp_path / "hub-state"), "--store-url", "")
        dozor("provision", "gateway", "gw-a", "--zone", "podil", str(root), "--state-dir", str(tmp_path / "gw-a"))
        subst = {"DIR": str(root), "/var/lib/dozor-hub-bucha": str(tmp_path / "hub-bucha"),
                 "/var/lib/dozor-gateway": str(tmp_path / "gw-state"), "8081": str(tenant_api)}
        lines = commands("docs/operations.md", HEADING)
        assert [shlex.split(c)[1:3] for c in lines] == [["provision", "tenant"], ["provision", "gateway"],
                                                       ["provision", "list"], ["hub", "run"], ["grafana", "push"]]
        grafana_line = lines.pop()
        with GeneratedBroker(root, port) as broker:
            text = (ROOT / "docs/operations.md").read_text()
            assert 'kill -HUP "$(pidof mosquitto)"' in text[text.index(HEADING):]
            for line in lines:
                args = [subst.get(a, a) for a in shlex.split(line)[1:]]
                args = [a.replace("DIR/", f"{root}/") for a in args]
                if args[:2] == ["hub", "run"]:
                    broker.reload()  # the documented kill -HUP, of this test's broker
                    for n, config in enumerate((str(root / "hub" / "hub.toml"), args[-1])):  # the default city's too
                        with open(tmp_path / f"hub-{n}.log", "ab") as log:
                            procs.append(subprocess.Popen([DOZOR, "hub", "run", "--config", config], env=env,
                                                          stdout=log, stderr=log))
                    continue
                r = dozor(*args)
                assert r.returncode == 0, (line, r.stderr)
            for p in (api, tenant_api):
                wait_port(p, timeout=30)
            for p in (api, tenant_api):  # both hubs connected to the broker with their own identities
                until(lambda p=p: httpx.get(f"http://127.0.0.1:{p}/healthz").json()["mqtt_ingest"] is True,
                      f"hub on {p} connected: {[(tmp_path / f'hub-{n}.log').read_text()[-1500:] for n in (0, 1)]}")
            # the tenant's gateway identity reads its city's retained hub state, published by the tenant's hub
            bundle = root / "tenants" / "bucha" / "gateways" / "gw-0001"
            gw = connect(port, ca=root / "ca.crt", cert=bundle / "client.crt", key=bundle / "client.key")
            assert gw.connected.is_set()
            gw.client.subscribe([("dozor/v1/bucha/hub/state", 1), ("dozor/v1/hub/state", 1)])
            until(lambda: any(t == "dozor/v1/bucha/hub/state" for t, _ in gw.messages), "bucha's hub state")
            time.sleep(0.3)
            assert {t for t, _ in gw.messages} == {"dozor/v1/bucha/hub/state"}  # not the default city's
            gw.close()

            data = tmp_path / "caddy"
            with open(tmp_path / "caddy.log", "ab") as fh:
                procs.append(subprocess.Popen(
                    ["caddy", "run", "--config", str(ROOT / "deploy/caddy/Caddyfile.tenants"), "--adapter",
                     "caddyfile"], stdout=fh, stderr=fh,
                    env={**os.environ, "DOZOR_PUBLIC_HOST": "localhost", "DOZOR_TENANT_HOST": "bucha.localhost",
                         "DOZOR_HTTPS_PORT": str(https), "DOZOR_HTTP_PORT": str(http),
                         "DOZOR_HUB_UPSTREAM": f"127.0.0.1:{api}", "DOZOR_TENANT_UPSTREAM": f"127.0.0.1:{tenant_api}",
                         "XDG_DATA_HOME": str(data), "XDG_CONFIG_HOME": str(data), "HOME": str(data)}))
            ca = data / "caddy/pki/authorities/local/root.crt"
            until(ca.exists, "Caddy's local CA")

            def via(host: str, path: str) -> httpx.Response:
                with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=10) as c:
                    return c.get(f"https://127.0.0.1:{https}{path}", headers={"Host": host},
                                 extensions={"sni_hostname": host})

            direct = {h: httpx.get(f"http://127.0.0.1:{p}/healthz").json()["kid"]
                      for h, p in (("localhost", api), ("bucha.localhost", tenant_api))}
            assert direct["localhost"] != direct["bucha.localhost"]  # two cities, two signing keys
            zone = {"localhost": "podil", "bucha.localhost": "vokzalna"}
            for host, kid in direct.items():
                until(lambda h=host: via(h, "/healthz").status_code == 200, f"{host} through Caddy")
                assert via(host, "/healthz").json()["kid"] == kid  # each host reaches its own city's hub
                feed = via(host, "/cap/feed.xml")
                assert feed.status_code == 200 and "<feed" in feed.text, (host, feed.status_code, feed.text[:300])
                page = via(host, "/")  # the resident page: its own city's zones
                assert page.status_code == 200 and zone[host] in page.text, (host, page.status_code)
                assert ({"podil", "vokzalna"} - {zone[host]}).pop() not in page.text
        with FakeGrafana("glsa-test") as grafana:  # the documented push, to the protocol-level fake Grafana
            args = [grafana.url if a.startswith("https://grafana") else a for a in shlex.split(grafana_line)[1:]]
            r = dozor(*args, env={"GRAFANA_TOKEN": "glsa-test", "INFLUX_TOKEN": "bucha-read-token"})
            assert r.returncode == 0, r.stderr
            assert set(grafana.folders) == {"dozor-bucha"}
            assert grafana.datasources["dozor-influxdb-bucha"]["jsonData"]["dbName"] == "dozor-bucha"
        hub_toml = (root / "tenants" / "bucha" / "hub" / "hub.toml").read_text()
        assert 'database = "dozor-bucha"' in hub_toml  # the tenant hub writes to the bucket the datasource reads
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(root.parent, ignore_errors=True)
