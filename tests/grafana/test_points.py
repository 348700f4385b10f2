"""Fleet and alert points: pure functions from contract models to line protocol (golden lines)."""

from __future__ import annotations

from contract.models import (
    Ack,
    AckStage,
    DeviceState,
    DeviceStatus,
    GatewayState,
    Heartbeat,
    Mode,
    OutboxStats,
    Signal,
    ZoneState,
    ZoneStatus,
)
from hub.grafana import points

TS = 1_767_225_600.25


def test_heartbeat_lines():
    hb = Heartbeat(gateway="gw-1", session=3, seq=7, ts=TS, uptime_s=120.5,
                   devices=(DeviceStatus(id="siren-1", state=DeviceState.SOUNDING),
                            DeviceStatus(id="siren-2", state=DeviceState.FAULT, faults=("amplifier", "door"))),
                   outbox=OutboxStats(depth=12, bytes=3400, oldest_age_s=4.5, dropped=1))
    assert points.heartbeat_lines(hb, zone="centre") == [
        "heartbeat,gateway=gw-1,zone=centre seq=7.0,uptime_s=120.5,devices=2.0,devices_not_ok=1.0,"
        "outbox_depth=12.0,outbox_bytes=3400.0,outbox_oldest_age_s=4.5,outbox_dropped=1.0 1767225600250",
        "device_status,device=siren-1,gateway=gw-1,state=sounding,zone=centre faults=0.0 1767225600250",
        "device_status,device=siren-2,gateway=gw-1,state=fault,zone=centre faults=2.0 1767225600250",
    ]


def test_heartbeat_without_outbox_or_zone():
    hb = Heartbeat(gateway="gw-1", session=0, seq=0, ts=TS, uptime_s=0)
    assert points.heartbeat_lines(hb) == [
        "heartbeat,gateway=gw-1 seq=0.0,uptime_s=0.0,devices=0.0,devices_not_ok=0.0 1767225600250"]


def test_gateway_state_lines():
    birth = GatewayState(gateway="gw-1", state="online", session=4, ts=TS, zone="north")
    will = GatewayState(gateway="gw-1", state="offline", session=4, ts=TS)
    assert points.gateway_state_line(birth) == (
        "gateway_state,cause=birth,gateway=gw-1,zone=north online=1.0,session=4.0,devices=0.0 1767225600250")
    assert points.gateway_state_line(will, zone="north") == (
        "gateway_state,cause=last_will,gateway=gw-1,zone=north online=0.0,session=4.0 1767225600250")
    assert points.gateway_online_line("gw-1", False, TS, cause="heartbeat timeout") == (
        "gateway_state,cause=heartbeat_timeout,gateway=gw-1 online=0.0 1767225600250")


def test_zone_state_levels_keep_exercise_and_actual_apart():
    def level(status, mode=None):
        return points.zone_level(ZoneState(zone="z", version=1, status=status, ts=TS, mode=mode))

    assert level(ZoneStatus.ACTIVE, Mode.EXERCISE) == 3
    assert level(ZoneStatus.ACTIVE, Mode.ACTUAL) == 4
    assert level(ZoneStatus.ACTIVE) == 4  # no mode on an active zone reads as actual: the safe side
    assert [level(s) for s in (ZoneStatus.IDLE, ZoneStatus.ALL_CLEAR, ZoneStatus.CANCELLED)] == [0, 1, 2]
    line = points.zone_state_line(ZoneState(zone="centre", version=5, status=ZoneStatus.ACTIVE, ts=TS,
                                            alert="A-1", signal=Signal.AIR_RAID, mode=Mode.ACTUAL))
    assert line == ("zone_state,alert=A-1,mode=actual,signal=air-raid,status=active,zone=centre "
                    "level=4.0,version=5.0 1767225600250")


def test_ack_line_sanitises_free_text():
    ack = Ack(gateway="gw-1", cmd="jti", alert="A-1", stage=AckStage.FAILED, devices=("siren-2",),
              reason="fault:amplifier, door=open\\x", ts=TS, mode=Mode.EXERCISE)
    assert points.ack_line(ack) == ("alert_ack,alert=A-1,gateway=gw-1,mode=exercise,reason=fault:amplifier_door_open_x,"
                                    "stage=failed acks=1.0,devices=1.0 1767225600250")
    rejected = Ack(gateway="gw-1", cmd="x", stage=AckStage.REJECTED, reason="expired", ts=TS)
    assert points.ack_line(rejected) == "alert_ack,gateway=gw-1,reason=expired,stage=rejected acks=1.0,devices=0.0 1767225600250"
