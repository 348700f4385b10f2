"""dozor's Grafana dashboards and InfluxDB datasource, as code.

Every query is raw InfluxQL over what the hub writes (``hub.ingest``: one measurement per device kind,
``aqi``; ``hub.grafana.points``: ``heartbeat``, ``gateway_state``, ``device_status``, ``zone_state``,
``alert_ack``). InfluxQL runs on InfluxDB 1.x, on 2.x through the DBRP mapping of the ``dozor`` bucket and on
3.x; the queries keep to what all three support (plain aggregates, tag regexes, ``fill``, one subquery).

``dozor grafana build`` writes ``files()`` under ``deploy/grafana/``; a test keeps the committed copies equal.
"""

from __future__ import annotations

import json
from typing import Any

from hub.aqi.tables import EAQI_2024, EPA_2024
from hub.grafana.builder import (
    DATASOURCE_UID,
    Dashboard,
    annotation,
    panel,
    query_variable,
    render,
    steps,
    target,
    value_mappings,
)
from hub.grafana.points import ZONE_LEVELS

DATABASE = "dozor"
DATASOURCE_NAME = "dozor InfluxDB"
FOLDER_UID = "dozor"
FOLDER_TITLE = "dozor"
DASHBOARD_DIR = "/var/lib/grafana/dashboards"  # where docker-compose.yml mounts deploy/grafana/dashboards
DEFAULT_INFLUX_URL = "http://influxdb:8086"  # the compose service
MIN_INTERVAL = "10s"

T = "$timeFilter"
ZONES = 'SHOW TAG VALUES FROM "heartbeat" WITH KEY = "zone"'  # every gateway heartbeats: the full zone list
ZONE_VAR = query_variable("zone", "Zone", ZONES)
ZONE = '"zone" =~ /^$zone$/'
BY_TIME = "GROUP BY time($__interval)"
NOT_OK = '"state" !~ /^(idle|spinning_up|sounding|playing|silent_test)$/'
FLAGGED = '"flags" =~ /.+/'
REFUSED = '"stage" =~ /^(rejected|failed)$/'

ALERTS_ANNOTATION = annotation(
    "Alerts", f"SELECT \"level\", \"status\", \"zone\", \"signal\", \"mode\" FROM \"zone_state\" WHERE \"level\" >= 3 AND {T}",
    text_column="signal", tags_column="zone,mode,status", colour="red")


def _where(*conds: str) -> str:
    return " AND ".join((*conds, T))


def _epa_thresholds() -> dict[str, Any]:
    bands = EPA_2024.bands["pm2_5"]
    return steps((None, bands[0].colour), *((b.i_lo, b.colour) for b in bands[1:]))


def _eaqi() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    bands = EAQI_2024.bands["pm2_5"]
    thresholds = steps((None, bands[0].colour), *((b.i_lo, b.colour) for b in bands[1:]))
    return thresholds, value_mappings({b.i_lo: (b.category.replace("_", " "), b.colour) for b in bands})


# ---- fleet health -----------------------------------------------------------------------------------------------

def fleet() -> Dashboard:
    gw = '"gateway" =~ /^$gateway$/'
    per_gw = "$tag_gateway"
    online_map = value_mappings({0: ("offline", "red"), 1: ("online", "green")})
    series = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "spanNulls": False}
    d = Dashboard("dozor-fleet", "dozor: fleet health",
                  "Gateways online, heartbeats, outbox depth and oldest unsent item, device states.",
                  variables=[ZONE_VAR, query_variable(
                      "gateway", "Gateway",
                      'SHOW TAG VALUES FROM "heartbeat" WITH KEY = "gateway" WHERE "zone" =~ /^$zone$/')],
                  annotations=[ALERTS_ANNOTATION])
    d.add(
        panel("stat", "Gateways online", [target(
            f'SELECT sum("online") FROM (SELECT last("online") AS "online" FROM "gateway_state" '
            f'WHERE {_where(ZONE, gw)} GROUP BY "gateway") WHERE {T}')], w=6, h=5,
            description="Gateways whose last state in the time range is online (birth), not last-will or timeout.",
            thresholds=steps((None, "red"), (1, "green")),
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                     "colorMode": "background", "graphMode": "none"}),
        panel("stat", "Outbox dropped at the disk bound", [target(
            f'SELECT last("outbox_dropped") FROM "heartbeat" WHERE {_where(ZONE, gw)} GROUP BY "gateway"',
            alias=per_gw)], w=6, h=5,
            description="Items a gateway dropped at its configured outbox bound (never silently: counted here).",
            thresholds=steps((None, "green"), (1, "red")),
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                     "colorMode": "background", "graphMode": "none", "textMode": "value_and_name"}),
        panel("state-timeline", "Gateway online", [target(
            f'SELECT last("online") FROM "gateway_state" WHERE {_where(ZONE, gw)} '
            f'{BY_TIME}, "gateway" fill(previous)', alias=per_gw)], w=12, h=5, mappings=online_map,
            thresholds=steps((None, "red"), (1, "green")), options={"showValue": "never", "mergeValues": True}),
        panel("timeseries", "Heartbeats", [target(
            f'SELECT count("seq") FROM "heartbeat" WHERE {_where(ZONE, gw)} {BY_TIME}, "gateway" fill(0)',
            alias=per_gw)], description="Heartbeats received per interval; a gap means the gateway went silent.",
            custom={**series, "drawStyle": "bars"}),
        panel("timeseries", "Outbox depth", [target(
            f'SELECT max("outbox_depth") FROM "heartbeat" WHERE {_where(ZONE, gw)} {BY_TIME}, "gateway" '
            f'fill(none)', alias=per_gw)], unit="short", custom=series,
            description="Items waiting in each gateway's outbox (store and forward)."),
        panel("timeseries", "Oldest unsent item", [target(
            f'SELECT max("outbox_oldest_age_s") FROM "heartbeat" WHERE {_where(ZONE, gw)} {BY_TIME}, '
            f'"gateway" fill(none)', alias=per_gw)], unit="s", custom=series,
            thresholds=steps((None, "green"), (60, "orange"), (600, "red")),
            description="Age of the oldest item not yet delivered to the hub."),
        panel("timeseries", "Devices by state", [target(
            f'SELECT count("faults") FROM "device_status" WHERE {_where(ZONE, gw)} {BY_TIME}, "state" fill(0)',
            alias="$tag_state")], custom={**series, "stacking": {"mode": "normal"}},
            description="Device states reported in heartbeats (a device counted once per heartbeat)."),
        panel("table", "Devices not OK (latest)", [target(
            f'SELECT last("faults") AS "faults" FROM "device_status" WHERE '
            f'{_where(ZONE, gw, NOT_OK)} '
            f'GROUP BY "gateway", "device", "state"', table=True)], w=24, h=7,
            description="Devices whose state was a fault, unreachable or unknown in the time range."),
    )
    return d


# ---- air quality ------------------------------------------------------------------------------------------------

PM_MEASUREMENTS = ("sds011", "pms5003", "noise_node")
# noise levels come from field nodes (UART) and from microphones on the gateway itself
NOISE_FROM = "/^(noise_node|microphone)$/"


def air() -> Dashboard:
    pol = '"pollutant" =~ /^$pollutant$/'
    eaqi_thresholds, eaqi_mappings = _eaqi()
    series = {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 0, "spanNulls": False,
              "thresholdsStyle": {"mode": "area"}}
    d = Dashboard("dozor-air", "dozor: air quality",
                  "Indicative air-quality indices by zone (low-cost sensors), with the index bands, and raw "
                  "PM concentrations by sensor. The worst pollutant decides the index.",
                  variables=[ZONE_VAR, query_variable(
                      "pollutant", "Pollutant", 'SHOW TAG VALUES FROM "aqi" WITH KEY = "pollutant"')],
                  annotations=[ALERTS_ANNOTATION])

    def aqi(table: str, agg: str, group: str) -> str:
        where = _where(f'"table" = \'{table}\'', ZONE, pol)
        return f'SELECT {agg}("index") FROM "aqi" WHERE {where} {group}'

    d.add(
        panel("timeseries", "US AQI (EPA 2024) by zone", [target(
            aqi("epa_2024", "max", f'{BY_TIME}, "zone" fill(none)'), alias="$tag_zone")], w=16, h=9,
            thresholds=_epa_thresholds(), custom=series, min=0, unit="none",
            description="Worst US EPA AQI (2024 PM breakpoints) in each zone per interval; bands as EPA colours."),
        panel("bargauge", "Worst US AQI in range", [target(
            aqi("epa_2024", "max", 'GROUP BY "zone"'), alias="$tag_zone")], w=8, h=9,
            thresholds=_epa_thresholds(), min=0, max=300,
            options={"displayMode": "basic", "orientation": "horizontal",
                     "reduceOptions": {"calcs": ["max"], "fields": "", "values": False}}),
        panel("state-timeline", "European AQI (EEA 2024) level by zone", [target(
            aqi("eaqi_2024", "max", f'{BY_TIME}, "zone" fill(none)'), alias="$tag_zone")], w=16, h=7,
            thresholds=eaqi_thresholds, mappings=eaqi_mappings, min=1, max=6,
            options={"showValue": "auto", "mergeValues": True},
            description="EEA European Air Quality Index level (1 good .. 6 extremely poor), worst pollutant."),
        panel("piechart", "US AQI categories (readings)", [target(
            aqi("epa_2024", "count", 'GROUP BY "category"'), alias="$tag_category")], w=8, h=7,
            options={"reduceOptions": {"calcs": ["sum"], "fields": "", "values": False},
                     "legend": {"displayMode": "table", "placement": "right", "values": ["value"]}}),
    )
    for metric, title in (("pm2_5", "PM2.5 by sensor"), ("pm10", "PM10 by sensor")):
        d.add(panel("timeseries", title, [
            target(f'SELECT mean("{metric}") FROM "{m}" WHERE {_where(ZONE)} {BY_TIME}, "gateway", "device" '
                   f'fill(none)', ref, alias=f"{m} $tag_gateway/$tag_device")
            for ref, m in zip("ABC", PM_MEASUREMENTS, strict=True)], unit="conμgm3",
            custom={**series, "thresholdsStyle": {"mode": "off"}}))
    d.add(
        panel("timeseries", "Relative humidity", [target(
            f'SELECT mean("humidity") FROM "bme280" WHERE {_where(ZONE)} {BY_TIME}, "gateway", "device" fill(none)',
            alias="$tag_gateway/$tag_device")], unit="humidity", min=0, max=100,
            thresholds=steps((None, "transparent"), (75, "orange")), custom={**series, "lineWidth": 1},
            description="Optical PM sensors over-read above 75 %RH; such readings carry the high_humidity flag."),
        panel("timeseries", "Flagged PM readings", [
            target(f'SELECT count("pm2_5") FROM "{m}" WHERE {_where(ZONE, FLAGGED)} {BY_TIME}, '
                   f'"flags" fill(none)', ref, alias=f"{m} $tag_flags")
            for ref, m in zip("ABC", PM_MEASUREMENTS, strict=True)],
            custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}},
            description="Readings flagged high_humidity, stuck or out_of_range: treat their values with care."),
    )
    return d


# ---- noise ------------------------------------------------------------------------------------------------------

NOISE_BANDS = steps((None, "green"), (55, "yellow"), (65, "orange"), (75, "red"))


def noise() -> Dashboard:
    sel = ('"gateway" =~ /^$gateway$/', '"device" =~ /^$device$/')
    by = f'{BY_TIME}, "gateway", "device" fill(none)'
    alias = "$tag_gateway/$tag_device"
    series = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "spanNulls": False,
              "thresholdsStyle": {"mode": "dashed"}}
    d = Dashboard("dozor-noise", "dozor: noise",
                  "A-weighted levels from the street noise nodes: LAeq, LAFmax, LA10 and LA90 by sensor.",
                  variables=[query_variable("gateway", "Gateway",
                                            'SHOW TAG VALUES FROM /^(noise_node|microphone)$/ WITH KEY = "gateway"'),
                             query_variable("device", "Sensor", 'SHOW TAG VALUES FROM /^(noise_node|microphone)$/ WITH KEY = '
                                                                '"device" WHERE "gateway" =~ /^$gateway$/')],
                  annotations=[ALERTS_ANNOTATION])
    d.add(
        panel("timeseries", "LAeq by sensor (energy average)", [target(
            f'SELECT 10 * log10(mean("e")) FROM (SELECT pow(10, "laeq" / 10) AS "e" FROM /^(noise_node|microphone)$/ '
            f'WHERE {_where(*sel)} GROUP BY "gateway", "device") WHERE {T} {by}', alias=alias)], w=24, h=9,
            unit="dB", thresholds=NOISE_BANDS, custom=series, decimals=1,
            description="Per-second LAeq averaged on energy (10·log10 of the mean of 10^(L/10)), not on "
                        "decibels. Bands at 55/65/75 dB(A) are display guides, not limits."),
        panel("timeseries", "LAFmax by sensor", [target(
            f'SELECT max("lafmax") FROM /^(noise_node|microphone)$/ WHERE {_where(*sel)} {by}', alias=alias)],
            unit="dB", thresholds=NOISE_BANDS, custom=series, decimals=1),
        panel("timeseries", "LA10 and LA90 by sensor", [
            target(f'SELECT mean("la10") FROM /^(noise_node|microphone)$/ WHERE {_where(*sel)} {by}', "A",
                   alias=f"LA10 {alias}"),
            target(f'SELECT mean("la90") FROM /^(noise_node|microphone)$/ WHERE {_where(*sel)} {by}', "B",
                   alias=f"LA90 {alias}")], unit="dB", custom=series, decimals=1,
            description="LA10 (level exceeded 10 % of the time: the peaks) and LA90 (the background)."),
        panel("bargauge", "Loudest LAFmax in range", [target(
            f'SELECT max("lafmax") FROM /^(noise_node|microphone)$/ WHERE {_where(*sel)} GROUP BY "gateway", "device"',
            alias=alias)], w=24, h=7, unit="dB", thresholds=NOISE_BANDS, min=30, max=120,
            options={"displayMode": "gradient", "orientation": "horizontal",
                     "reduceOptions": {"calcs": ["max"], "fields": "", "values": False}}),
    )
    return d


# ---- alert timeline ---------------------------------------------------------------------------------------------

def alerts() -> Dashboard:
    colours = {"idle": "green", "all_clear": "blue", "cancelled": "text", "exercise": "purple", "actual": "red"}
    mappings = value_mappings({v: (k.replace("_", " ") if k != "actual" else "ACTUAL", colours[k])
                               for k, v in ZONE_LEVELS.items()})
    d = Dashboard("dozor-alerts", "dozor: alert timeline",
                  "Zone states over time (idle, exercise, ACTUAL, all clear, cancelled), every state change, and "
                  "the device acknowledgements by stage.",
                  variables=[query_variable("zone", "Zone", 'SHOW TAG VALUES FROM "zone_state" WITH KEY = "zone"')],
                  annotations=[ALERTS_ANNOTATION], refresh="10s", time_from="now-24h")
    d.add(
        panel("state-timeline", "Zone status", [target(
            f'SELECT last("level") FROM "zone_state" WHERE {_where(ZONE)} {BY_TIME}, "zone" fill(previous)',
            alias="$tag_zone")], w=24, h=8, mappings=mappings, thresholds=steps((None, "green")),
            options={"showValue": "auto", "mergeValues": True, "rowHeight": 0.8}),
        panel("timeseries", "Device acks by stage", [target(
            f'SELECT sum("devices") FROM "alert_ack" WHERE {_where()} {BY_TIME}, "stage" fill(none)',
            alias="$tag_stage")], custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal"}},
            description="Devices reaching each stage (accepted, sounding, playing, done, failed)."),
        panel("table", "Rejected and failed", [target(
            f'SELECT sum("acks") AS "acks", sum("devices") AS "devices" FROM "alert_ack" WHERE '
            f'{_where(REFUSED)} GROUP BY "gateway", "stage", "reason"', table=True)],
            description="Refused commands and failed devices, with the reason the gateway gave."),
        panel("table", "Zone state changes", [target(
            f'SELECT "level", "version", "status", "signal", "mode", "alert" FROM "zone_state" '
            f'WHERE {_where(ZONE)} GROUP BY "zone"', table=True)], w=24, h=9, mappings=mappings),
    )
    return d


DASHBOARDS = {"fleet": fleet, "air": air, "noise": noise, "alerts": alerts}


def dashboards() -> dict[str, dict[str, Any]]:
    """File stem -> dashboard JSON model."""
    return {f"dozor-{name}": make().to_dict() for name, make in DASHBOARDS.items()}


# ---- datasource and provisioning --------------------------------------------------------------------------------

def datasource(url: str = DEFAULT_INFLUX_URL, token: str | None = "${INFLUX_TOKEN}", *,
               database: str = DATABASE) -> dict[str, Any]:
    """The InfluxQL datasource. With a token it is sent as ``Authorization: Token ...`` (InfluxDB 2.x/3.x;
    the database is the DBRP-mapped bucket); without one, no auth (InfluxDB 1.x without auth)."""
    ds: dict[str, Any] = {
        "name": DATASOURCE_NAME, "uid": DATASOURCE_UID, "type": "influxdb", "access": "proxy", "url": url,
        "database": database, "isDefault": True,
        "jsonData": {"version": "InfluxQL", "dbName": database, "httpMode": "POST", "timeInterval": MIN_INTERVAL},
    }
    if token:
        ds["jsonData"]["httpHeaderName1"] = "Authorization"
        ds["secureJsonData"] = {"httpHeaderValue1": f"Token {token}"}
    return ds


def _yaml(obj: Any, indent: int = 0) -> str:
    """A tiny YAML emitter for nested dicts/lists of scalars (strings as JSON, which YAML reads)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                out.append(f"{pad}{k}:\n{_yaml(v, indent + 2)}")
            else:
                out.append(f"{pad}{k}: {json.dumps(v)}\n")
    else:
        for item in obj:
            body = _yaml(item, indent + 2)
            out.append(f"{pad}- {body[indent + 2:]}")
    return "".join(out)


def datasource_provisioning() -> dict[str, Any]:
    return {"apiVersion": 1, "datasources": [{**datasource(), "editable": False}]}


def dashboard_provisioning() -> dict[str, Any]:
    return {"apiVersion": 1, "providers": [{
        "name": "dozor", "orgId": 1, "folder": FOLDER_TITLE, "folderUid": FOLDER_UID, "type": "file",
        "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 60,
        "options": {"path": DASHBOARD_DIR, "foldersFromFilesStructure": False}}]}


HEADER = "# Generated by `dozor grafana build` from hub/grafana/; edit there, not here.\n"


def files() -> dict[str, str]:
    """Relative path under deploy/grafana/ -> file content."""
    out = {f"dashboards/{stem}.json": render(d) for stem, d in dashboards().items()}
    out["provisioning/datasources/influxdb.yaml"] = HEADER + _yaml(datasource_provisioning())
    out["provisioning/dashboards/dozor.yaml"] = HEADER + _yaml(dashboard_provisioning())
    return out
