"""The hub's API shapes (requests and responses). dozor/client.py parses responses into these."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contract.command import MAX_DURATION_S
from contract.models import Id, Mode, Sha256Hex, Signal


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Message(_In):
    uk: str | None = Field(default=None, max_length=1000)
    en: str | None = Field(default=None, max_length=1000)


class AlertRequest(_In):
    """POST /api/v1/alerts. ``mode`` is required: exercise or actual is always explicit."""

    zones: list[Id] = Field(min_length=1, max_length=500)
    signal: Signal
    mode: Mode
    duration_s: int = Field(default=180, ge=1, le=MAX_DURATION_S)
    message: Message | None = None

    @field_validator("zones")
    @classmethod
    def _unique(cls, zones: list[str]) -> list[str]:
        return list(dict.fromkeys(zones))


class DeviceTrackOut(_Out):
    gateway: str
    device: str
    kind: str | None = None
    state: str
    reason: str | None = None
    confirm_ms: float | None = None
    accepted_ms: float | None = None
    attempts: int = 0
    updated_at: float | None = None


class Summary(_Out):
    total: int = 0
    confirmed: int = 0
    failed: int = 0
    unreachable: int = 0
    pending: int = 0
    first_confirm_ms: float | None = None
    last_confirm_ms: float | None = None
    p50_confirm_ms: float | None = None
    p99_confirm_ms: float | None = None


class AlertOut(_Out):
    id: str
    signal: Signal
    mode: Mode
    zones: list[str]
    duration_s: int
    created_at: float
    expires_at: float
    status: str
    message: Message | None = None
    version: int
    phase: str
    phase_signal: Signal
    phase_started_at: float
    tracking: bool
    updated_at: float
    dispatch_ms: float | None = None  # the phase's request -> its last command written to the broker socket
    summary: Summary
    escalations: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    requested_by: dict[str, str] | None = None  # the user who started it: {name, role, via}
    acted_by: dict[str, str] | None = None  # the user behind the current phase (all-clear, stop, cancel)


class AlertDetail(AlertOut):
    devices: list[DeviceTrackOut] = []


class DeviceOut(_Out):
    gateway: str
    id: str
    kind: str | None = None
    state: str
    faults: list[str] = []
    gateway_state: str
    zones: list[str] = []
    fw: str | None = None  # DeviceInfo.fw from the birth (field nodes: what their STATUS frames report)
    detail: str | None = None  # DeviceStatus.detail from the last heartbeat


class GatewayOut(_Out):
    id: str
    state: str
    reason: str = ""
    session: int
    sw: str = ""
    zone: str | None = None
    heartbeat_s: float
    last_heartbeat_age_s: float | None = None
    since: float
    keys: list[str] = []
    devices: list[DeviceOut] = []
    outbox: dict[str, Any] | None = None
    trusts_active_key: bool = False  # the hub's active signing key is among ``keys`` (the kids its birth pins)
    unverified: int = 0  # messages naming this gateway that the hub ignored (unsigned, bad signature, replayed)


class ZoneOut(_Out):
    id: str
    name: str
    gateways: list[str]
    devices: list[str]
    polygon: dict[str, Any] | None = None
    status: str = "idle"
    alert: str | None = None
    version: int = 0
    alerting_devices: int = 0


class MetricOut(_Out):
    value: float
    ts: float
    age_s: float
    flags: list[str] = []


class LatestOut(_Out):
    """GET /api/v1/telemetry/latest: the newest value of each metric of one device."""

    gateway: str
    device: str
    kind: str
    zone: str | None = None
    metrics: dict[str, MetricOut] = {}


class TailReadingOut(_Out):
    cursor: int
    gateway: str
    zone: str | None = None
    device: str
    kind: str
    ts: float
    metrics: dict[str, float]
    flags: list[str] = []


class TailOut(_Out):
    """GET /api/v1/telemetry/tail: readings after ``after``; pass ``cursor`` back as the next ``after``.
    ``missed`` counts readings that already left the hub's short buffer (they are in the store)."""

    cursor: int
    missed: int = 0
    readings: list[TailReadingOut] = []


class IndexOut(_Out):
    table: str
    value: int
    category: str
    pollutant: str
    beyond: bool = False


class AirRowOut(_Out):
    """One PM sensor: latest concentrations (ug/m3) and the indicative index per table."""

    zone: str | None = None
    gateway: str
    device: str
    kind: str
    pm2_5: float | None = None
    pm10: float | None = None
    ts: float
    age_s: float
    high_humidity: bool = False
    flags: list[str] = []
    aqi: dict[str, IndexOut] = {}
    indicative: bool = True


class AirZoneOut(_Out):
    zone: str
    devices: int
    aqi: dict[str, IndexOut] = {}  # the worst device in the zone, per table


class AirOut(_Out):
    tables: list[str]
    rows: list[AirRowOut] = []
    zones: list[AirZoneOut] = []


VERSION_PATTERN = r"^\d{1,3}\.\d{1,3}(\.\d{1,3})?$"


class NodeRegistration(_In):
    """POST /api/v1/nodes: what `dozor firmware flash --hub` records after a good flash and self-test.

    ``key_sha256`` is the SHA-256 (hex) of the node's 32-byte key, never the key itself (see hub/nodes.py)."""

    id: Id
    kind: Literal["noise", "air"]
    zone: Id
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    key_sha256: Sha256Hex | None = None
    fw: str = Field(pattern=VERSION_PATTERN)
    provisioned_by: str | None = Field(default=None, max_length=128)


class NodeOut(_Out):
    id: str
    kind: str | None = None
    zone: str | None = None
    lat: float | None = None
    lon: float | None = None
    key_sha256: str | None = None
    fw: str | None = None  # registered at provisioning (the build's full version)
    provisioned_at: float | None = None  # None: reported by a gateway but never registered
    provisioned_by: str | None = None
    gateway: str | None = None
    last_seen: float | None = None
    reported_fw: str | None = None  # from the node's STATUS frames ("major.minor"), via its gateway
    boot_count: int | None = None
    error_bits: int | None = None
    state: str | None = None
    running_fw: str | None = None  # what the hub believes runs on the node (see hub/nodes.py)
    current_version: str | None = None
    outdated: bool | None = None  # None: not known (no version, or no current version configured)
