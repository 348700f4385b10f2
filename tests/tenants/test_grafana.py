"""`dozor grafana push --tenant NAME` against the protocol-level fake Grafana of tests/grafana: each city gets its
own folder and datasource (its own bucket), and every query of its dashboards is bound to that datasource."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dozor.cli import app
from hub.grafana.builder import DATASOURCE_UID
from hub.grafana.dashboards import dashboards
from tests.grafana.fake_grafana import FakeGrafana

TOKEN = "glsa_test_token"
ENV = {"COLUMNS": "200", "GRAFANA_URL": "", "GRAFANA_TOKEN": "", "INFLUX_TOKEN": "", "INFLUX_URL": ""}


def push(*args: str, **env: str):
    return CliRunner().invoke(app, ["grafana", "push", *args], env={**ENV, **env})


def datasource_refs(node) -> list[str]:
    if isinstance(node, dict):
        own = [node["uid"]] if node.get("type") == "influxdb" and "uid" in node else []
        return own + [u for v in node.values() for u in datasource_refs(v)]
    if isinstance(node, list):
        return [u for v in node for u in datasource_refs(v)]
    return []


def test_each_city_gets_its_own_folder_datasource_and_dashboards():
    with FakeGrafana(TOKEN) as grafana:
        for tenant in ("odesa", "bucha"):
            r = push("--url", grafana.url, "--token", TOKEN, "--tenant", tenant, "--json",
                     INFLUX_TOKEN=f"{tenant}-scoped-token")
            assert r.exit_code == 0, r.output
        assert push("--url", grafana.url, "--token", TOKEN, INFLUX_TOKEN="city").exit_code == 0  # the default city
        assert set(grafana.folders) == {"dozor", "dozor-odesa", "dozor-bucha"}
        assert set(grafana.datasources) == {DATASOURCE_UID, "dozor-influxdb-odesa", "dozor-influxdb-bucha"}
        for tenant in ("odesa", "bucha"):
            ds = grafana.datasources[f"dozor-influxdb-{tenant}"]
            assert ds["jsonData"]["dbName"] == f"dozor-{tenant}" and ds["isDefault"] is False
            assert ds["secureJsonData"] == {"httpHeaderValue1": f"Token {tenant}-scoped-token"}
        plain = dashboards()
        assert len(grafana.dashboards) == 3 * len(plain)
        per_folder: dict[str, set[str]] = {}
        for sent in (req["body"] for req in grafana.requests if req["path"] == "/api/dashboards/db"):
            refs = set(datasource_refs(sent["dashboard"]))
            assert len(refs) == 1, refs  # every panel, variable and annotation: one datasource
            per_folder.setdefault(sent["folderUid"], set()).update(refs)
        assert per_folder == {"dozor": {DATASOURCE_UID}, "dozor-odesa": {"dozor-influxdb-odesa"},
                              "dozor-bucha": {"dozor-influxdb-bucha"}}


@pytest.mark.parametrize("bad", ["Bucha", "gw", "a" * 32])
def test_a_bad_or_too_long_tenant_is_refused_before_any_request(bad):
    with FakeGrafana(TOKEN) as grafana:
        r = push("--url", grafana.url, "--token", TOKEN, "--tenant", bad, "--json", INFLUX_TOKEN="t")
        assert r.exit_code == 2 and "--tenant" in json.loads(r.output)["error"]
        assert grafana.requests == []
