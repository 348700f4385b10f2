"""Versioned message models. Every payload on the wire is JSON of one of these (commands are JWS).

Receivers call ``decode(Model, payload, topic=...)``, which turns any failure into MalformedMessage
so the caller can count it, log it and drop it without raising inside a message callback.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.errors import MalformedMessage
from contract.topics import ID_RE

Id = Annotated[str, Field(pattern=ID_RE.pattern)]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
MAX_PAYLOAD_BYTES = 256 * 1024


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class Signal(StrEnum):
    AIR_RAID = "air-raid"
    ALL_CLEAR = "all-clear"
    CHEMICAL = "chemical"
    RADIATION = "radiation"
    TEST = "test"
    SILENT_TEST = "silent-test"


class Mode(StrEnum):
    """CAP status, restricted to what may drive field devices. Explicit in every alert and command."""

    ACTUAL = "actual"
    EXERCISE = "exercise"


class Action(StrEnum):
    ACTIVATE = "activate"  # sirens sound the signal's pattern, speakers play the signal's message
    STOP = "stop"  # stop whatever the targets are doing for this alert


class DeviceKind(StrEnum):
    SIREN = "siren"
    SPEAKER = "speaker"
    SDS011 = "sds011"
    PMS5003 = "pms5003"
    BME280 = "bme280"
    NOISE_NODE = "noise_node"
    MICROPHONE = "microphone"  # a measurement microphone on the gateway itself (USB or I2S)


# What each kind can do: device kinds are data, and tests run over this table.
CAPABILITIES: dict[DeviceKind, frozenset[str]] = {
    DeviceKind.SIREN: frozenset({"activate", "stop", "silent_test", "status", "faults"}),
    DeviceKind.SPEAKER: frozenset({"activate", "stop", "play", "status"}),
    DeviceKind.SDS011: frozenset({"pm"}),
    DeviceKind.PMS5003: frozenset({"pm"}),
    DeviceKind.BME280: frozenset({"climate"}),
    DeviceKind.NOISE_NODE: frozenset({"noise", "events"}),
    DeviceKind.MICROPHONE: frozenset({"noise", "events"}),
}
ALERTING_KINDS = frozenset({DeviceKind.SIREN, DeviceKind.SPEAKER})


class DeviceInfo(Model):
    id: Id
    kind: DeviceKind
    bus: str | None = None
    address: int | None = None
    fw: str | None = None


class GatewayState(Model):
    """Retained on dozor/v1/gw/{gw}/state. Birth has state=online; the last-will has state=offline."""

    v: Literal[1] = 1
    gateway: Id
    state: Literal["online", "offline"]
    session: int = Field(ge=0)
    ts: float
    sw: str = ""
    heartbeat_s: float = Field(default=10.0, gt=0, le=3600)
    devices: tuple[DeviceInfo, ...] = ()
    keys: tuple[str, ...] = ()  # pinned hub key ids, so the hub can see what a gateway trusts
    zone: Id | None = None
    # base64url raw Ed25519 public key the gateway signs noise evidence with (contract.evidence); its kid
    # is contract.command.key_id(key). Absent when the gateway signs no evidence.
    evidence_key: str | None = Field(default=None, min_length=43, max_length=43, pattern=r"^[A-Za-z0-9_-]{43}$")
    # base64url raw Ed25519 public key the gateway signs its messages with (contract.signed); informational:
    # the hub verifies only against the key enrolled for this gateway, never against this one.
    identity_key: str | None = Field(default=None, min_length=43, max_length=43, pattern=r"^[A-Za-z0-9_-]{43}$")
    ctr: int | None = Field(default=None, ge=0)  # contract.signed: 1 for the birth, 0 for the last-will


class DeviceState(StrEnum):
    IDLE = "idle"
    SPINNING_UP = "spinning_up"
    SOUNDING = "sounding"
    PLAYING = "playing"
    SILENT_TEST = "silent_test"
    FAULT = "fault"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"


class DeviceStatus(Model):
    id: Id
    state: DeviceState
    faults: tuple[str, ...] = ()
    detail: str | None = None


class OutboxStats(Model):
    depth: int = Field(ge=0)
    bytes: int = Field(ge=0)
    oldest_age_s: float = Field(ge=0)
    dropped: int = Field(default=0, ge=0)


class Heartbeat(Model):
    v: Literal[1] = 1
    gateway: Id
    session: int = Field(ge=0)
    seq: int = Field(ge=0)
    ts: float
    uptime_s: float = Field(ge=0)
    devices: tuple[DeviceStatus, ...] = ()
    outbox: OutboxStats | None = None
    counters: dict[str, int] = Field(default_factory=dict)
    ctr: int | None = Field(default=None, ge=0)  # contract.signed per-session counter


class AckStage(StrEnum):
    ACCEPTED = "accepted"
    SOUNDING = "sounding"
    PLAYING = "playing"
    DONE = "done"
    REJECTED = "rejected"
    FAILED = "failed"


TERMINAL_STAGES = frozenset({AckStage.DONE, AckStage.REJECTED, AckStage.FAILED})


class Ack(Model):
    """Gateway -> hub, one per stage. ``devices`` lists the devices that reached ``stage`` together.

    ``cmd`` is the command's jti. For a rejected command whose claims could not be trusted, ``cmd`` is
    the unverified jti when one could be read, else ``token_sha256`` identifies the token.
    """

    v: Literal[1] = 1
    gateway: Id
    cmd: str = Field(min_length=1, max_length=128)
    alert: str | None = Field(default=None, max_length=128)
    stage: AckStage
    devices: tuple[Id, ...] = ()
    reason: str | None = Field(default=None, max_length=64)
    detail: str | None = Field(default=None, max_length=512)
    ts: float
    token_sha256: Sha256Hex | None = None
    mode: Mode | None = None
    session: int | None = Field(default=None, ge=0)  # contract.signed: the sender's session and counter
    ctr: int | None = Field(default=None, ge=0)


class ZoneStatus(StrEnum):
    IDLE = "idle"
    ACTIVE = "active"
    ALL_CLEAR = "all_clear"
    CANCELLED = "cancelled"


class ZoneState(Model):
    """Retained public state of a zone on dozor/v1/zone/{zone}/state. A higher version replaces a lower."""

    v: Literal[1] = 1
    zone: Id
    version: int = Field(ge=0)
    status: ZoneStatus
    alert: str | None = None
    signal: Signal | None = None
    mode: Mode | None = None
    ts: float
    expires: float | None = None
    headline: dict[str, str] = Field(default_factory=dict)  # language -> text


class HubState(Model):
    v: Literal[1] = 1
    state: Literal["online", "offline"]
    ts: float
    keys: tuple[str, ...] = ()


class Reading(Model):
    device: Id
    kind: DeviceKind | Literal["health"]
    ts: float
    metrics: dict[str, float]
    flags: tuple[str, ...] = ()


class TelemetryBatch(Model):
    """One flush of readings. ``(gateway, session, seq)`` is its stable identity: a re-sent batch has the same
    key and bytes, so the hub stores it once. ``historical`` (as Sparkplug's ``is_historical``): ``false`` for
    live readings sent as they come, ``true`` for backlog drained after an outage or restart; absent in
    batches from older gateways (treat as live)."""

    v: Literal[1] = 1
    gateway: Id
    session: int = Field(ge=0)
    seq: int = Field(ge=0)
    readings: tuple[Reading, ...]
    historical: bool | None = None


FieldName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class CompactSeries(Model):
    """Readings of one device with the same kind, flags and metric names (``contract.codecs.telemetry``).
    ``rows``: one line per reading, ``\n``-separated: the values in ``fields`` order, then the timestamp in integer
    milliseconds, all comma-separated JSON numbers (``45.25,61.0,1767225600000``)."""

    device: Id
    kind: DeviceKind | Literal["health"]
    flags: tuple[FieldName, ...] = ()
    fields: tuple[FieldName, ...] = Field(min_length=1, max_length=64)
    rows: str = Field(min_length=1)


class CompactBatch(Model):
    """Wire version 2 of a telemetry batch: the same identity and ``historical`` flag as ``TelemetryBatch``, its
    readings grouped in ``series`` with the values as text rows, so a receiver validates and passes them on in
    bulk instead of building one object per reading. ``contract.codecs.telemetry`` encodes and decodes it."""

    v: Literal[2] = 2
    gateway: Id
    session: int = Field(ge=0)
    seq: int = Field(ge=0)
    series: tuple[CompactSeries, ...] = Field(min_length=1)
    historical: bool | None = None


class Event(Model):
    v: Literal[1] = 1
    gateway: Id
    id: str = Field(min_length=1, max_length=128)
    device: Id | None = None
    kind: str = Field(min_length=1, max_length=64)
    ts: float
    data: dict[str, object] = Field(default_factory=dict)
    session: int | None = Field(default=None, ge=0)  # contract.signed: the sender's session and counter
    ctr: int | None = Field(default=None, ge=0)


M = TypeVar("M", bound=BaseModel)


def decode(model: type[M], payload: bytes | str, *, topic: str | None = None) -> M:
    """Decode and validate a JSON payload, converting every failure to MalformedMessage."""
    if isinstance(payload, str):
        payload = payload.encode()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MalformedMessage("too_large", topic=topic, detail=f"{len(payload)} bytes")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        reason = "bad_json" if first.get("type") == "json_invalid" else "invalid"
        raise MalformedMessage(reason, topic=topic, detail=f"{where}: {first.get('msg', '')}"[:200]) from None
