"""`dozor grafana push` against a protocol-level fake Grafana: exact request bodies, updates, readable errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dozor.cli import app
from hub.grafana.dashboards import FOLDER_UID, dashboards, datasource
from simulators.brokers import free_port
from tests.grafana.fake_grafana import FakeGrafana

TOKEN = "glsa_test_token"
ENV = {"COLUMNS": "200", "GRAFANA_URL": "", "GRAFANA_TOKEN": "", "INFLUX_TOKEN": "", "INFLUX_URL": ""}


def dozor(*args: str, **env: str):
    return CliRunner().invoke(app, ["grafana", "push", *args], env={**ENV, **env})


@pytest.fixture
def grafana():
    with FakeGrafana(TOKEN) as fake:
        yield fake


def test_push_creates_datasource_folder_and_dashboards(grafana):
    r = dozor("--url", grafana.url, "--token", TOKEN, "--influx-url", "http://influx:8086", "--json",
              INFLUX_TOKEN="influx-secret")
    assert r.exit_code == 0, r.output
    generated = dashboards()
    assert grafana.calls() == [
        ("GET", "/api/health"), ("GET", "/api/datasources/uid/dozor-influxdb"), ("POST", "/api/datasources"),
        ("GET", f"/api/folders/{FOLDER_UID}"), ("POST", "/api/folders"),
        *[("POST", "/api/dashboards/db")] * len(generated)]
    assert all(req["auth"] == f"Bearer {TOKEN}" for req in grafana.requests[1:])
    ds_body = grafana.requests[2]["body"]
    assert ds_body == datasource("http://influx:8086", "influx-secret")
    assert ds_body["secureJsonData"] == {"httpHeaderValue1": "Token influx-secret"}
    assert grafana.requests[4]["body"] == {"uid": FOLDER_UID, "title": "dozor"}
    sent = [req["body"] for req in grafana.requests[5:]]
    assert sent == [{"dashboard": {**d, "id": None}, "folderUid": FOLDER_UID, "overwrite": True,
                     "message": "dozor grafana push"} for d in generated.values()]
    out = json.loads(r.output)
    assert out == {"grafana_version": "11.3.0", "datasource": "created", "folder": "created",
                   "dashboards": {d["uid"]: f"/d/{d['uid']}/{d['uid']}" for d in generated.values()}}


def test_second_push_updates_in_place(grafana):
    assert dozor("--url", grafana.url, "--token", TOKEN, INFLUX_TOKEN="t1").exit_code == 0
    grafana.requests.clear()
    r = dozor("--url", grafana.url + "/", "--token", TOKEN, "--influx-url", "http://other:8086", "--influx-no-auth")
    assert r.exit_code == 0, r.output
    assert ("PUT", "/api/datasources/uid/dozor-influxdb") in grafana.calls()
    assert ("POST", "/api/datasources") not in grafana.calls() and ("POST", "/api/folders") not in grafana.calls()
    assert grafana.datasources["dozor-influxdb"]["url"] == "http://other:8086"
    assert "secureJsonData" not in grafana.datasources["dozor-influxdb"]  # --influx-no-auth: no auth header
    assert {uid: d["version"] for uid, d in grafana.dashboards.items()} == {uid: 2 for uid in dashboards()}
    assert "datasource updated, folder exists" in r.output


def test_no_datasource_pushes_only_dashboards(grafana):
    r = dozor("--url", grafana.url, "--token", TOKEN, "--no-datasource")
    assert r.exit_code == 0, r.output
    assert not any("datasource" in path for _, path in grafana.calls())
    assert sorted(grafana.dashboards) == sorted(dashboards())


def test_wrong_token_is_a_readable_error(grafana):
    r = dozor("--url", grafana.url, "--token", "wrong", "--json", INFLUX_TOKEN="t")
    assert r.exit_code == 1
    error = json.loads(r.output)["error"]
    assert "refused GET /api/datasources/uid/dozor-influxdb (401: invalid API key)" in error
    assert "GRAFANA_TOKEN" in error
    assert not grafana.dashboards


def test_grafana_refusing_a_dashboard_is_reported(grafana):
    grafana.fail_dashboards = (412, {"message": "The dashboard has been changed by someone else",
                                     "status": "version-mismatch"})
    r = dozor("--url", grafana.url, "--token", TOKEN, INFLUX_TOKEN="t")
    assert r.exit_code == 1
    assert "Grafana POST /api/dashboards/db failed (412): The dashboard has been changed by someone else" in (
        " ".join(r.output.split()))


def test_missing_influx_token_is_refused_before_any_request(grafana):
    r = dozor("--url", grafana.url, "--token", TOKEN, "--json")
    assert r.exit_code == 1
    assert "pass --influx-token or set INFLUX_TOKEN" in json.loads(r.output)["error"]
    assert grafana.requests == []


def test_unreachable_grafana_is_a_readable_error():
    r = dozor("--url", f"http://127.0.0.1:{free_port()}", "--token", TOKEN, "--json", INFLUX_TOKEN="t")
    assert r.exit_code == 1
    assert json.loads(r.output)["error"].startswith("Grafana not reachable at http://127.0.0.1:")


def test_bad_url_is_refused_before_any_request():
    r = dozor("--url", "grafana.local:3000", "--token", TOKEN, "--json")
    assert r.exit_code == 1
    assert "--url must be an http(s) URL" in json.loads(r.output)["error"]
