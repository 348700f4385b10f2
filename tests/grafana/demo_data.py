"""Demo-shaped telemetry for the dashboard tests: the city's gateway and zone layout (``CityPlan``), each gateway
with a PM sensor, a BME280 and a noise node, half an hour of readings, heartbeats, gateway births and a
last-will, two alerts (an exercise and an actual) with their acks. Fixed timestamps: no wall clock.

Readings become lines only through the hub's own ``Ingest`` pipeline; fleet and alert points through
``hub.grafana.points``. Everything is written with the hub's v1 writer.
"""

from __future__ import annotations

import math

from contract.models import (
    Ack,
    AckStage,
    DeviceState,
    DeviceStatus,
    GatewayState,
    Heartbeat,
    Mode,
    OutboxStats,
    Reading,
    Signal,
    TelemetryBatch,
    ZoneState,
    ZoneStatus,
)
from hub.grafana import points
from hub.ingest.pipeline import Ingest
from simulators.city import CityPlan

BASE = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STEP_S = 60
STEPS = 30
FROM_MS = int(BASE * 1000) - 60_000
TO_MS = int((BASE + STEP_S * STEPS) * 1000) + 60_000
PLAN = CityPlan(gateways=4, sirens_per_gateway=2, zones=2)
GATEWAYS = PLAN.gateway_ids()
ZONE_OF = {PLAN.gateway_id(i): PLAN.zone_of(i) for i in range(PLAN.gateways)}
PM_KIND = {gw: ("sds011" if i % 2 == 0 else "pms5003") for i, gw in enumerate(GATEWAYS)}
ALERT_EXERCISE = "A-20260101-001000-aaaaaa"
ALERT_ACTUAL = "A-20260101-001640-bbbbbb"


def laeq(i: int, k: int) -> float:
    return round(58 + 4 * i + 6 * math.sin(k / 4), 2)


def pm25(i: int, k: int) -> float:
    return round(4 + 12 * i + 10 * (1 + math.sin(k / 5)), 1)


def humidity(i: int, k: int) -> float:
    return round(60 + 25 * math.sin(k / 6 + i), 2)


def telemetry_batches() -> list[TelemetryBatch]:
    out: list[TelemetryBatch] = []
    for i, gw in enumerate(GATEWAYS):
        for k in range(STEPS):
            ts = BASE + k * STEP_S
            rh = humidity(i, k)
            flags = ("high_humidity",) if rh > 75 else ()
            readings = [
                Reading(device="pm-1", kind=PM_KIND[gw], ts=ts, metrics={"pm2_5": pm25(i, k), "pm10": pm25(i, k) * 1.6},
                        flags=flags),
                Reading(device="climate-1", kind="bme280", ts=ts,
                        metrics={"temperature": 3.5 + i, "humidity": rh, "pressure": 101_325.0 - 40 * i}),
                Reading(device="noise-1", kind="noise_node", ts=ts,
                        metrics={"laeq": laeq(i, k), "lafmax": laeq(i, k) + 14, "la10": laeq(i, k) + 3,
                                 "la90": laeq(i, k) - 7}),
            ]
            if k % 5 == 0:  # the node's own air sample
                readings.append(Reading(device="noise-1", kind="noise_node", ts=ts + 0.5,
                                        metrics={"pm2_5": pm25(i, k) + 2, "pm10": pm25(i, k) * 1.5,
                                                 "temperature": 4.0 + i, "humidity": rh}, flags=flags))
            out.append(TelemetryBatch(gateway=gw, session=1, seq=k, readings=tuple(readings)))
    return out


def reading_lines() -> tuple[list[str], Ingest]:
    ingest = Ingest(zone_of=ZONE_OF.get)
    lines: list[str] = []
    for batch in telemetry_batches():
        lines += ingest.batch_lines(batch)
    return lines, ingest


def fleet_lines() -> list[str]:
    lines: list[str] = []
    for i, gw in enumerate(GATEWAYS):
        zone = ZONE_OF[gw]
        lines.append(points.gateway_state_line(
            GatewayState(gateway=gw, state="online", session=1, ts=BASE - 30, zone=zone)))
        for k in range(STEPS):
            sirens = [DeviceStatus(id=f"siren-{n}", state=DeviceState.IDLE) for n in (1, 2)]
            if i == 1 and k >= 10:
                sirens[1] = DeviceStatus(id="siren-2", state=DeviceState.UNREACHABLE, faults=("no_response",))
            depth = 0 if i != 3 else 40 * k
            hb = Heartbeat(gateway=gw, session=1, seq=k, ts=BASE + k * STEP_S + 1, uptime_s=30.0 + k * STEP_S,
                           devices=tuple(sirens), outbox=OutboxStats(depth=depth, bytes=depth * 180,
                                                                     oldest_age_s=float(k * STEP_S if depth else 0),
                                                                     dropped=2 if i == 3 and k > 25 else 0))
            lines += points.heartbeat_lines(hb, zone=zone)
    gw = GATEWAYS[3]
    lines.append(points.gateway_state_line(
        GatewayState(gateway=gw, state="offline", session=1, ts=BASE + 1200), zone=ZONE_OF[gw]))
    lines.append(points.gateway_online_line(gw, False, BASE + 1250, session=1, zone=ZONE_OF[gw],
                                            cause="heartbeat_timeout"))
    lines.append(points.gateway_state_line(
        GatewayState(gateway=gw, state="online", session=2, ts=BASE + 1500, zone=ZONE_OF[gw])))
    return lines


def _zone(zone: str, version: int, status: ZoneStatus, ts: float, **kw) -> ZoneState:
    return ZoneState(zone=zone, version=version, status=status, ts=ts, **kw)


def alert_lines() -> list[str]:
    z0, z1 = PLAN.zone_id(0), PLAN.zone_id(1)
    states = [
        _zone(z0, 1, ZoneStatus.IDLE, BASE),
        _zone(z1, 1, ZoneStatus.IDLE, BASE),
        _zone(z0, 2, ZoneStatus.ACTIVE, BASE + 600, alert=ALERT_EXERCISE, signal=Signal.TEST, mode=Mode.EXERCISE),
        _zone(z0, 3, ZoneStatus.ALL_CLEAR, BASE + 900, alert=ALERT_EXERCISE, mode=Mode.EXERCISE),
        _zone(z1, 2, ZoneStatus.ACTIVE, BASE + 1000, alert=ALERT_ACTUAL, signal=Signal.AIR_RAID, mode=Mode.ACTUAL),
        _zone(z1, 3, ZoneStatus.ALL_CLEAR, BASE + 1500, alert=ALERT_ACTUAL, signal=Signal.ALL_CLEAR,
              mode=Mode.ACTUAL),
    ]
    lines = [points.zone_state_line(s) for s in states]
    for alert, zone, t0, mode in ((ALERT_EXERCISE, z0, BASE + 600, Mode.EXERCISE),
                                  (ALERT_ACTUAL, z1, BASE + 1000, Mode.ACTUAL)):
        for gw in (g for g in GATEWAYS if ZONE_OF[g] == zone):
            common = {"gateway": gw, "cmd": f"jti-{alert[-6:]}-{gw}", "alert": alert, "mode": mode}
            lines.append(points.ack_line(Ack(stage=AckStage.ACCEPTED, devices=("siren-1", "siren-2"), ts=t0 + 0.2,
                                             **common)))
            lines.append(points.ack_line(Ack(stage=AckStage.SOUNDING, devices=("siren-1",), ts=t0 + 2, **common)))
            if gw == GATEWAYS[1]:
                lines.append(points.ack_line(Ack(stage=AckStage.FAILED, devices=("siren-2",), reason="unreachable",
                                                 ts=t0 + 5, **common)))
            lines.append(points.ack_line(Ack(stage=AckStage.DONE, devices=("siren-1",), ts=t0 + 180, **common)))
    lines.append(points.ack_line(Ack(gateway=GATEWAYS[0], cmd="jti-stale", alert=ALERT_ACTUAL,
                                     stage=AckStage.REJECTED, reason="expired", ts=BASE + 1001, mode=Mode.ACTUAL)))
    return lines
