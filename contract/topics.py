"""MQTT topic grammar (works on MQTT 3.1.1: no MQTT 5 properties are needed anywhere).

    dozor/v1/hub/state                      retained  hub online/offline (hub last-will)
    dozor/v1/zone/{zone}/state              retained  public zone state (ZoneState)
    dozor/v1/gw/{gw}/state                  retained  birth / death with session (GatewayState, last-will)
    dozor/v1/gw/{gw}/heartbeat              QoS 0     Heartbeat
    dozor/v1/gw/{gw}/telemetry              QoS 1     TelemetryBatch
    dozor/v1/gw/{gw}/event                  QoS 1     Event
    dozor/v1/gw/{gw}/cmd                    QoS 1     compact JWS (signed command), hub -> gateway
    dozor/v1/gw/{gw}/ack                    QoS 1     Ack, gateway -> hub
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from contract.errors import MalformedMessage

ROOT = "dozor/v1"
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class GwChannel(StrEnum):
    STATE = "state"
    HEARTBEAT = "heartbeat"
    TELEMETRY = "telemetry"
    EVENT = "event"
    CMD = "cmd"
    ACK = "ack"


def check_id(value: str, what: str = "id") -> str:
    """Gateway, device and zone ids share one grammar: no MQTT wildcards or separators."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ValueError(f"invalid {what} {value!r}: use 1-64 of A-Z a-z 0-9 _ . - (starting alphanumeric)")
    return value


def gw(gateway_id: str, channel: GwChannel | str) -> str:
    return f"{ROOT}/gw/{check_id(gateway_id, 'gateway id')}/{GwChannel(channel).value}"


def zone_state(zone: str) -> str:
    return f"{ROOT}/zone/{check_id(zone, 'zone')}/state"


HUB_STATE = f"{ROOT}/hub/state"
# the audit chain head signed by the hub (retained; docs/protocol.md "Audit anchors")
HUB_AUDIT_HEAD = f"{ROOT}/hub/audit/head"

# Subscriptions
SUB_ALL_GATEWAYS = f"{ROOT}/gw/+/+"
SUB_ALL_ZONES = f"{ROOT}/zone/+/state"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    kind: str  # "gw", "zone" or "hub"
    ident: str | None
    channel: str


def parse(topic: str) -> ParsedTopic:
    """Parse any dozor topic; raise MalformedMessage for anything outside the grammar."""
    parts = topic.split("/")
    if len(parts) < 3 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise MalformedMessage("foreign_topic", topic=topic)
    rest = parts[2:]
    if rest == ["hub", "state"]:
        return ParsedTopic("hub", None, "state")
    if rest == ["hub", "audit", "head"]:
        return ParsedTopic("hub", None, "audit-head")
    if len(rest) == 3 and rest[0] == "zone" and rest[2] == "state" and ID_RE.match(rest[1]):
        return ParsedTopic("zone", rest[1], "state")
    if len(rest) == 3 and rest[0] == "gw" and ID_RE.match(rest[1]):
        try:
            return ParsedTopic("gw", rest[1], GwChannel(rest[2]).value)
        except ValueError:
            raise MalformedMessage("unknown_channel", topic=topic) from None
    raise MalformedMessage("bad_topic", topic=topic)
