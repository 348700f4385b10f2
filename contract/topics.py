"""MQTT topic grammar (works on MQTT 3.1.1: no MQTT 5 properties are needed anywhere).

    dozor/v1/hub/state                      retained  hub online/offline (hub last-will)
    dozor/v1/hub/audit/head                 retained  the signed audit chain head
    dozor/v1/zone/{zone}/state              retained  public zone state (ZoneState)
    dozor/v1/gw/{gw}/state                  retained  birth / death with session (GatewayState, last-will)
    dozor/v1/gw/{gw}/heartbeat              QoS 0     Heartbeat
    dozor/v1/gw/{gw}/telemetry              QoS 1     TelemetryBatch
    dozor/v1/gw/{gw}/event                  QoS 1     Event
    dozor/v1/gw/{gw}/cmd                    QoS 1     compact JWS (signed command), hub -> gateway
    dozor/v1/gw/{gw}/ack                    QoS 1     Ack, gateway -> hub

Tenants (several cities on one broker): a named tenant puts its name after ``dozor/v1``
(``dozor/v1/{tenant}/gw/{gw}/cmd``, ``dozor/v1/{tenant}/zone/{zone}/state``, ...). The default tenant
(``tenant = ""``) is the layout above, unchanged. ``Topics(tenant)`` builds and parses one tenant's topics; a
tenant name is never ``gw``, ``zone`` or ``hub`` (``TENANT_RE``, ``RESERVED_TENANTS``), so the segment after
``dozor/v1`` says at once whether a topic belongs to the default tenant or to a named one, and a parser bound to
one tenant refuses every other tenant's topic (``foreign_topic``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from contract.errors import MalformedMessage

ROOT = "dozor/v1"
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# a tenant (a city): lower case, so one name cannot hide as another on case-folding proxies and file systems
TENANT_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
RESERVED_TENANTS = frozenset({"gw", "zone", "hub"})  # the first segment of the default tenant's topics
DEFAULT_TENANT = ""


class GwChannel(StrEnum):
    STATE = "state"
    HEARTBEAT = "heartbeat"
    TELEMETRY = "telemetry"
    EVENT = "event"
    CMD = "cmd"
    ACK = "ack"
    RECEIPT = "receipt"  # hub -> gateway: telemetry committed (contract.codecs.receipt)


def check_id(value: str, what: str = "id") -> str:
    """Gateway, device and zone ids share one grammar: no MQTT wildcards or separators."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ValueError(f"invalid {what} {value!r}: use 1-64 of A-Z a-z 0-9 _ . - (starting alphanumeric)")
    return value


def check_tenant(value: str) -> str:
    """``""`` (the default tenant) or a name of 1-32 of a-z 0-9 - (starting alphanumeric), not gw/zone/hub."""
    if value == DEFAULT_TENANT:
        return value
    if not isinstance(value, str) or not TENANT_RE.match(value) or value in RESERVED_TENANTS:
        raise ValueError(f"invalid tenant {value!r}: use 1-32 of a-z 0-9 - (starting alphanumeric), "
                         f"not one of {', '.join(sorted(RESERVED_TENANTS))}; \"\" is the default tenant")
    return value


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    kind: str  # "gw", "zone" or "hub"
    ident: str | None
    channel: str


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of one tenant. ``Topics()`` is the default tenant (``dozor/v1/...``)."""

    tenant: str = DEFAULT_TENANT
    root: str = field(init=False)

    def __post_init__(self) -> None:
        check_tenant(self.tenant)
        object.__setattr__(self, "root", f"{ROOT}/{self.tenant}" if self.tenant else ROOT)

    def gw(self, gateway_id: str, channel: GwChannel | str) -> str:
        return f"{self.root}/gw/{check_id(gateway_id, 'gateway id')}/{GwChannel(channel).value}"

    def zone_state(self, zone: str) -> str:
        return f"{self.root}/zone/{check_id(zone, 'zone')}/state"

    @property
    def hub_state(self) -> str:
        return f"{self.root}/hub/state"

    @property
    def hub_audit_head(self) -> str:
        return f"{self.root}/hub/audit/head"

    def sub_gateways(self, channel: GwChannel | str = "+") -> str:
        """Every gateway's ``channel`` (``+``: every channel) of this tenant."""
        return f"{self.root}/gw/+/{channel if channel == '+' else GwChannel(channel).value}"

    @property
    def sub_zones(self) -> str:
        return f"{self.root}/zone/+/state"

    def parse(self, topic: str) -> ParsedTopic:
        """Parse one of this tenant's topics; raise MalformedMessage for anything else (another tenant's too)."""
        parts = topic.split("/")
        depth = 3 if self.tenant else 2
        if len(parts) <= depth or "/".join(parts[:depth]) != self.root:
            raise MalformedMessage("foreign_topic", topic=topic)
        rest = parts[depth:]
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
        if not self.tenant and rest and rest[0] not in RESERVED_TENANTS:
            raise MalformedMessage("foreign_topic", topic=topic)  # a named tenant's topic reaching the default
        raise MalformedMessage("bad_topic", topic=topic)


def tenant_of(topic: str) -> str | None:
    """The tenant a dozor topic belongs to (``""``: the default tenant), or None if it is not a dozor topic."""
    parts = topic.split("/")
    if len(parts) < 3 or "/".join(parts[:2]) != ROOT:
        return None
    return DEFAULT_TENANT if parts[2] in RESERVED_TENANTS else parts[2]


# The default tenant, as module-level names (single-city code and the tools that only ever see one city).
DEFAULT = Topics()


def gw(gateway_id: str, channel: GwChannel | str) -> str:
    return DEFAULT.gw(gateway_id, channel)


def zone_state(zone: str) -> str:
    return DEFAULT.zone_state(zone)


def parse(topic: str) -> ParsedTopic:
    """Parse any topic of the default tenant; raise MalformedMessage for anything outside the grammar."""
    return DEFAULT.parse(topic)


HUB_STATE = DEFAULT.hub_state
# the audit chain head signed by the hub (retained; docs/protocol.md "Audit anchors")
HUB_AUDIT_HEAD = DEFAULT.hub_audit_head

# Subscriptions
SUB_ALL_GATEWAYS = DEFAULT.sub_gateways()
SUB_ALL_ZONES = DEFAULT.sub_zones
