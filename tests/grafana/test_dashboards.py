"""The dashboards and provisioning files are generated, committed, consistent and deterministic."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from contract.models import DeviceKind
from dozor.cli import app
from hub.grafana import influxql
from hub.grafana.builder import DATASOURCE_UID, GRID_WIDTH
from hub.grafana.dashboards import DASHBOARD_DIR, dashboards, datasource, files

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "grafana"
# What the hub writes: hub.ingest (one measurement per device kind, and aqi) and hub.grafana.points.
WRITTEN = {k.value for k in DeviceKind} | {"health", "aqi", "heartbeat", "gateway_state", "device_status",
                                            "zone_state", "alert_ack"}


def test_committed_files_equal_the_generator():
    generated = files()
    on_disk = {str(p.relative_to(DEPLOY)): p.read_text(encoding="utf-8")
               for p in DEPLOY.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(generated), "run `dozor grafana build` and commit deploy/grafana/"
    for rel, text in generated.items():
        assert on_disk[rel] == text, f"deploy/grafana/{rel} is stale: run `dozor grafana build`"


def test_generation_is_deterministic():
    assert files() == files()


def test_build_check_reports_a_stale_file(tmp_path):
    runner = CliRunner()
    first = runner.invoke(app, ["grafana", "build", "--out", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert runner.invoke(app, ["grafana", "build", "--out", str(tmp_path), "--check"]).exit_code == 0
    stale = tmp_path / "dashboards" / "dozor-air.json"
    stale.write_text(stale.read_text().replace("dozor: air quality", "old title"))
    check = runner.invoke(app, ["grafana", "build", "--out", str(tmp_path), "--check", "--json"])
    assert check.exit_code == 1
    assert json.loads(check.output)["changed"] == [str(stale)]


@pytest.mark.parametrize("stem", sorted(dashboards()))
def test_dashboard_structure(stem):
    d = dashboards()[stem]
    assert d["uid"] == stem and d["title"].startswith("dozor: ")
    ids = [p["id"] for p in d["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= GRID_WIDTH, p["title"]
        assert p["datasource"]["uid"] == DATASOURCE_UID
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(set(refs)) == len(refs), p["title"]
        assert all(t["rawQuery"] and t["datasource"]["uid"] == DATASOURCE_UID for t in p["targets"])
    boxes = {(x, y) for p in d["panels"] for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
             for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])}
    assert len(boxes) == sum(p["gridPos"]["w"] * p["gridPos"]["h"] for p in d["panels"]), "panels overlap"


@pytest.mark.parametrize("stem", sorted(dashboards()))
def test_queries_read_only_what_the_hub_writes_and_define_their_variables(stem):
    d = dashboards()[stem]
    variables, all_values = influxql.all_selected(d)
    for q in influxql.queries(d):
        text = influxql.interpolate(q.query, from_ms=0, to_ms=3_600_000, variables=variables, all_values=all_values)
        assert "$" not in text.replace("$/", "").replace("$)", ""), text
        measurements = set(re.findall(r'FROM "(\w+)"', text))
        for alternatives in re.findall(r"FROM /\^\(([\w|]+)\)\$/", text):  # FROM /^(a|b)$/
            measurements |= set(alternatives.split("|"))
        assert measurements and measurements <= WRITTEN, f"{q.name}: {measurements - WRITTEN}"


def test_unknown_variable_is_a_clear_error():
    with pytest.raises(influxql.InterpolationError, match=r"\$nope"):
        influxql.interpolate('SELECT 1 FROM "x" WHERE "a" =~ /^$nope$/', from_ms=0, to_ms=1)


def test_interpolation_matches_grafana():
    q = 'SELECT mean("v") FROM "m" WHERE "g" =~ /^$g$/ AND $timeFilter GROUP BY time($__interval)'
    common = {"from_ms": 0, "to_ms": 6 * 3_600_000}
    assert influxql.interpolate(q, variables={"g": ["gw.1", "gw-2"]}, **common) == (
        'SELECT mean("v") FROM "m" WHERE "g" =~ /^(gw\\.1|gw-2)$/ AND time >= 0ms and time <= 21600000ms '
        "GROUP BY time(30s)")
    assert "=~ /^.*$/" in influxql.interpolate(q, variables={"g": [influxql.ALL]}, all_values={"g": ".*"}, **common)
    assert influxql.interval_ms(0, 60_000) == 10_000  # never below the datasource's minimum interval


def test_provisioning_files():
    ds_doc = yaml.safe_load((DEPLOY / "provisioning/datasources/influxdb.yaml").read_text())
    (ds,) = ds_doc["datasources"]
    assert ds["uid"] == DATASOURCE_UID and ds["type"] == "influxdb"
    assert ds["jsonData"]["version"] == "InfluxQL" and ds["jsonData"]["dbName"] == "dozor"
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    assert ds["secureJsonData"]["httpHeaderValue1"] == "Token ${INFLUX_TOKEN}"
    prov = yaml.safe_load((DEPLOY / "provisioning/dashboards/dozor.yaml").read_text())
    assert prov["providers"][0]["options"]["path"] == DASHBOARD_DIR


def test_compose_mounts_what_provisioning_expects():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert f"./deploy/grafana/dashboards:{DASHBOARD_DIR}:ro" in grafana["volumes"]
    assert "INFLUX_TOKEN" in grafana["environment"]
    assert compose["services"]["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_BUCKET"] == "dozor"


def test_datasource_without_token_has_no_auth_header():
    ds = datasource("http://db:8086", None)
    assert "secureJsonData" not in ds and "httpHeaderName1" not in ds["jsonData"]
