"""Every query of every dashboard (panels, template variables, annotations) runs against a real InfluxDB 1.6
that holds demo-shaped data written exactly as the hub writes it, and returns series."""

from __future__ import annotations

import math

import pytest

from hub.grafana import influxql
from hub.grafana.dashboards import dashboards
from tests.grafana import demo_data

pytestmark = pytest.mark.integration

DASHBOARDS = dashboards()
CASES = [(stem, q) for stem, d in DASHBOARDS.items() for q in influxql.queries(d)]


def run(loaded, stem: str, query: str, **selected: list[str]) -> list[dict]:
    variables, all_values = influxql.all_selected(DASHBOARDS[stem])
    variables.update(selected)
    text = influxql.interpolate(query, from_ms=demo_data.FROM_MS, to_ms=demo_data.TO_MS, variables=variables,
                                all_values=all_values)
    return loaded.query(text).get("series", [])


def find(stem: str, title: str, ref: str = "A") -> str:
    return next(q.query for q in influxql.queries(DASHBOARDS[stem]) if q.name == f"{title} [{ref}]")


def test_the_demo_data_went_through_the_hub_pipeline_cleanly(demo_influx):
    counters = demo_influx.ingest_counters
    assert counters["batches"] == len(demo_data.GATEWAYS) * demo_data.STEPS
    assert not {k: v for k, v in counters.items() if k not in ("batches", "readings")}, counters


@pytest.mark.parametrize(("stem", "q"), CASES, ids=[f"{s}:{q.kind}:{q.name}" for s, q in CASES])
def test_query_returns_series(demo_influx, stem, q):
    series = run(demo_influx, stem, q.query)
    assert series, f"{stem} {q.kind} {q.name!r} returned no series: {q.query}"
    assert any(v is not None for s in series for row in s["values"] for v in row[1:]), f"only nulls: {q.query}"


def test_every_dashboard_has_queries_of_each_kind():
    kinds = {stem: {q.kind for q in influxql.queries(d)} for stem, d in DASHBOARDS.items()}
    assert kinds == {stem: {"panel", "variable", "annotation"} for stem in DASHBOARDS}


def test_zone_variable_lists_the_city_zones(demo_influx):
    query = next(q.query for q in influxql.queries(DASHBOARDS["dozor-fleet"]) if q.name == "zone")
    series = run(demo_influx, "dozor-fleet", query)
    assert sorted(v[1] for v in series[0]["values"]) == sorted(set(demo_data.ZONE_OF.values()))


def test_selecting_a_gateway_narrows_fleet_panels(demo_influx):
    gw = demo_data.GATEWAYS[1]
    series = run(demo_influx, "dozor-fleet", find("dozor-fleet", "Heartbeats"), gateway=[gw])
    assert [s["tags"]["gateway"] for s in series] == [gw]
    assert sum(row[1] for row in series[0]["values"]) == demo_data.STEPS
    two = run(demo_influx, "dozor-fleet", find("dozor-fleet", "Heartbeats"), gateway=demo_data.GATEWAYS[:2])
    assert sorted(s["tags"]["gateway"] for s in two) == demo_data.GATEWAYS[:2]


def test_fleet_panels_show_outbox_faults_and_the_offline_gateway(demo_influx):
    lost = demo_data.GATEWAYS[3]
    depth = run(demo_influx, "dozor-fleet", find("dozor-fleet", "Outbox depth"), gateway=[lost])
    assert max(row[1] for row in depth[0]["values"] if row[1] is not None) == 40 * (demo_data.STEPS - 1)
    not_ok = run(demo_influx, "dozor-fleet", find("dozor-fleet", "Devices not OK (latest)"))
    assert [(s["tags"]["gateway"], s["tags"]["device"], s["tags"]["state"]) for s in not_ok] == [
        (demo_data.GATEWAYS[1], "siren-2", "unreachable")]
    online = run(demo_influx, "dozor-fleet", find("dozor-fleet", "Gateway online"), gateway=[lost])
    values = [row[1] for row in online[0]["values"] if row[1] is not None]
    assert 0 in values and values[-1] == 1  # last-will, then re-born


def test_aqi_panels_use_the_hub_index_and_bands(demo_influx):
    series = run(demo_influx, "dozor-air", find("dozor-air", "US AQI (EPA 2024) by zone"))
    values = [row[1] for s in series for row in s["values"] if row[1] is not None]
    assert values and all(0 <= v <= 500 for v in values)
    cats = run(demo_influx, "dozor-air", find("dozor-air", "US AQI categories (readings)"))
    assert {s["tags"]["category"] for s in cats} <= {"good", "moderate", "unhealthy_sensitive", "unhealthy",
                                                     "very_unhealthy", "hazardous"}
    eaqi = run(demo_influx, "dozor-air", find("dozor-air", "European AQI (EEA 2024) level by zone"))
    assert {row[1] for s in eaqi for row in s["values"] if row[1] is not None} <= set(range(1, 7))


def test_selecting_a_zone_narrows_aqi(demo_influx):
    zone = demo_data.PLAN.zone_id(0)
    series = run(demo_influx, "dozor-air", find("dozor-air", "US AQI (EPA 2024) by zone"), zone=[zone])
    assert [s["tags"]["zone"] for s in series] == [zone]


def test_laeq_panel_averages_energy_not_decibels(demo_influx):
    gw = demo_data.GATEWAYS[2]
    i = demo_data.GATEWAYS.index(gw)
    q = find("dozor-noise", "LAeq by sensor (energy average)")
    variables, all_values = influxql.all_selected(DASHBOARDS["dozor-noise"])
    variables["gateway"] = [gw]
    window = demo_data.STEPS * demo_data.STEP_S * 1000
    start = int(demo_data.BASE * 1000)
    text = influxql.interpolate(q, from_ms=start, to_ms=start + window - 1, variables=variables,
                                all_values=all_values, interval=window)
    series = demo_influx.query(text)["series"]
    got = [row[1] for row in series[0]["values"] if row[1] is not None]
    levels = [demo_data.laeq(i, k) for k in range(demo_data.STEPS)]
    energy = 10 * math.log10(sum(10 ** (v / 10) for v in levels) / len(levels))
    assert got == [pytest.approx(energy, abs=1e-6)]
    assert energy > sum(levels) / len(levels) + 0.1  # the arithmetic mean of dB would under-read


def test_alert_timeline_levels_and_acks(demo_influx):
    changes = run(demo_influx, "dozor-alerts", find("dozor-alerts", "Zone state changes"))
    by_zone = {s["tags"]["zone"]: [row[1] for row in s["values"]] for s in changes}
    assert by_zone == {demo_data.PLAN.zone_id(0): [0, 3, 1], demo_data.PLAN.zone_id(1): [0, 4, 1]}
    acks = run(demo_influx, "dozor-alerts", find("dozor-alerts", "Device acks by stage"))
    assert {s["tags"]["stage"] for s in acks} == {"accepted", "sounding", "failed", "done", "rejected"}
    refused = run(demo_influx, "dozor-alerts", find("dozor-alerts", "Rejected and failed"))
    assert sorted((s["tags"]["gateway"], s["tags"]["stage"], s["tags"]["reason"]) for s in refused) == [
        (demo_data.GATEWAYS[0], "rejected", "expired"), (demo_data.GATEWAYS[1], "failed", "unreachable")]
