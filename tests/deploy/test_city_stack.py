"""A provisioned city runs as generated: Mosquitto on DIR/broker/mosquitto.conf, `dozor hub run` on
DIR/hub/hub.toml, two cabinets from their bundles on simulated sirens, an exercise through mutual TLS."""

from __future__ import annotations

import json
import shutil

import pytest

from dozor.client import HubClient
from simulators.brokers import free_port
from tests.deploy.helpers import GeneratedBroker, Procs, city_dir, dozor, start_cabinet, until

pytestmark = pytest.mark.integration


def test_hub_sees_both_gateways_and_an_exercise_reaches_both_over_tls(tmp_path):
    root, port, api = city_dir(), free_port(), free_port()
    hub_state = tmp_path / "hub-state"
    try:
        dozor("provision", "init", str(root), "--broker-host", "127.0.0.1", "--port", str(port), "--bind",
              "127.0.0.1", "--hub-state-dir", str(hub_state), "--store-url", "", "--api-port", str(api))
        for gw, zone in (("gw-a", "podil"), ("gw-b", "obolon")):
            dozor("provision", "gateway", gw, "--zone", zone, str(root), "--state-dir", str(tmp_path / gw))
        with GeneratedBroker(root, port), Procs(tmp_path) as procs:
            procs.start("hub", "hub", "run", "--config", str(root / "hub" / "hub.toml"))
            token_file = root / "hub" / "admin-token"
            until(lambda: token_file.exists() and HubClient(f"http://127.0.0.1:{api}",
                                                            token_file.read_text().strip()).health(),
                  "the hub's API", procs=procs)
            for gw in ("gw-a", "gw-b"):
                start_cabinet(procs, root / "gateways" / gw, tmp_path / f"{gw}.tty")
            client = HubClient(f"http://127.0.0.1:{api}", token_file.read_text().strip())
            until(lambda: sorted(g.id for g in client.gateways() if g.state == "online") == ["gw-a", "gw-b"],
                  "both gateways online at the hub", procs=procs)
            env = {"DOZOR_HUB_URL": f"http://127.0.0.1:{api}", "DOZOR_TOKEN_FILE": str(token_file)}
            out = dozor("alert", "start", "--zone", "podil", "--zone", "obolon", "--signal", "air-raid",
                        "--exercise", "--duration", "30", "--wait", "30", "--json", env=env)
            alert = json.loads(out.stdout)
            assert alert["mode"] == "exercise"
            assert alert["summary"]["total"] == 4 and alert["summary"]["confirmed"] == 4
            assert sorted({d["gateway"] for d in alert["devices"]}) == ["gw-a", "gw-b"]
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
