"""Line-protocol points the dashboards need beyond sensor readings: fleet health and the alert timeline.

Pure functions from contract models to lines (the same ``Point`` and escaping rules as ``hub.ingest``), so
the hub can write them through its ingest spool. Text goes in tags, every field is a float.

========================  ===========================================  ===========================================
measurement               tags                                         fields
========================  ===========================================  ===========================================
``gateway_state``         gateway, zone?, cause                        online (1/0), session, devices
``heartbeat``             gateway, zone?                               seq, uptime_s, devices, devices_not_ok,
                                                                       outbox_depth, outbox_bytes,
                                                                       outbox_oldest_age_s, outbox_dropped
                                                                       (the four outbox_* only with an outbox)
``device_status``         gateway, device, state, zone?                faults (count)
``zone_state``            zone, status, mode?, signal?, alert?         level (see ``ZONE_LEVELS``), version
``alert_ack``             gateway, stage, alert?, mode?, reason?       acks (1), devices (count)
========================  ===========================================  ===========================================

``zone`` is the gateway's home zone as the caller knows it (``GatewayState.zone`` or the zones file);
without one the tag is left out. The dashboards' zone lists come from the ``heartbeat`` zone tag.
"""

from __future__ import annotations

import re

from contract.models import Ack, DeviceState, GatewayState, Heartbeat, Mode, ZoneState, ZoneStatus
from hub.ingest.lineproto import Point, to_ms

# The zone state timeline's numeric level: the dashboards map these back to words and colours.
ZONE_LEVELS: dict[str, int] = {"idle": 0, "all_clear": 1, "cancelled": 2, "exercise": 3, "actual": 4}
OK_DEVICE_STATES = frozenset({DeviceState.IDLE, DeviceState.SPINNING_UP, DeviceState.SOUNDING,
                              DeviceState.PLAYING, DeviceState.SILENT_TEST})
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


def _value(v: object) -> str:
    return str(getattr(v, "value", v))


def _label(text: str | None) -> str:
    """Free text (alert ids, ack reasons) made safe as a tag value; '' leaves the tag out."""
    return _LABEL_UNSAFE.sub("_", text)[:128] if text else ""


def gateway_online_line(gateway: str, online: bool, ts: float, *, session: int | None = None,
                        devices: int | None = None, zone: str | None = None, cause: str = "") -> str:
    """One gateway_state point: birth, last-will, or the hub's own heartbeat-timeout verdict."""
    fields = {"online": 1.0 if online else 0.0}
    if session is not None:
        fields["session"] = float(session)
    if devices is not None:
        fields["devices"] = float(devices)
    tags = {"gateway": gateway, "zone": zone or "", "cause": _label(cause)}
    return Point("gateway_state", fields, to_ms(ts), tags).line()


def gateway_state_line(state: GatewayState, *, zone: str | None = None) -> str:
    online = state.state == "online"
    return gateway_online_line(state.gateway, online, state.ts, session=state.session,
                               devices=len(state.devices) if online else None, zone=zone or state.zone,
                               cause="birth" if online else "last_will")


def heartbeat_lines(hb: Heartbeat, *, zone: str | None = None) -> list[str]:
    """The gateway's heartbeat point, then one device_status point per device it reported."""
    not_ok = sum(1 for d in hb.devices if d.state not in OK_DEVICE_STATES or d.faults)
    fields = {"seq": float(hb.seq), "uptime_s": float(hb.uptime_s), "devices": float(len(hb.devices)),
              "devices_not_ok": float(not_ok)}
    if hb.outbox is not None:
        fields.update(outbox_depth=float(hb.outbox.depth), outbox_bytes=float(hb.outbox.bytes),
                      outbox_oldest_age_s=float(hb.outbox.oldest_age_s), outbox_dropped=float(hb.outbox.dropped))
    ts = to_ms(hb.ts)
    out = [Point("heartbeat", fields, ts, {"gateway": hb.gateway, "zone": zone or ""}).line()]
    for d in hb.devices:
        tags = {"gateway": hb.gateway, "device": d.id, "state": _value(d.state), "zone": zone or ""}
        out.append(Point("device_status", {"faults": float(len(d.faults))}, ts, tags).line())
    return out


def zone_level(state: ZoneState) -> int:
    if state.status == ZoneStatus.ACTIVE:
        return ZONE_LEVELS["exercise" if state.mode == Mode.EXERCISE else "actual"]
    return ZONE_LEVELS[_value(state.status)]


def zone_state_line(state: ZoneState) -> str:
    """One zone_state point per published ZoneState (the alert timeline). An active zone without a mode
    counts as actual: the safe reading."""
    tags = {"zone": state.zone, "status": _value(state.status), "mode": _value(state.mode) if state.mode else "",
            "signal": _value(state.signal) if state.signal else "", "alert": _label(state.alert)}
    return Point("zone_state", {"level": float(zone_level(state)), "version": float(state.version)},
                 to_ms(state.ts), tags).line()


def ack_line(ack: Ack) -> str:
    """One alert_ack point per ack: how many devices reached which stage, and why not."""
    tags = {"gateway": ack.gateway, "stage": _value(ack.stage), "alert": _label(ack.alert),
            "mode": _value(ack.mode) if ack.mode else "", "reason": _label(ack.reason)}
    return Point("alert_ack", {"acks": 1.0, "devices": float(len(ack.devices))}, to_ms(ack.ts), tags).line()
