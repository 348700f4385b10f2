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
    break_glass: bool = False  # one supervisor sends alone, past the two-person rule (needs ``reason``)
    reason: str | None = Field(default=None, min_length=3, max_length=500)

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
    superseded_by: str | None = None


class Summary(_Out):
    total: int = 0  # devices this alert drives (taken-over devices not counted)
    superseded: int = 0  # devices another alert took over (hub/alerts/policy.py)
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
    by: str | None = None  # who ordered the current phase, as the signed commands' ``by`` claim says it
    confirmed_by: dict[str, str] | None = None  # the second person (two-person rule)
    confirm_by: float | None = None  # pending_confirmation: expires unsent at this time
    break_glass: str | None = None  # the reason, when one supervisor sent it alone
    supersedes: list[str] = []  # alerts whose sirens this one took over
    superseded_by: list[str] = []  # alerts that took sirens over from this one
    affects: list[str] = []  # pending: the alerts confirming it would take sirens from
    escalations: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    requested_by: dict[str, str] | None = None  # the user who started it: {name, role, via}
    acted_by: dict[str, str] | None = None  # the user behind the current phase (all-clear, stop, cancel)


class AlertDetail(AlertOut):
    devices: list[DeviceTrackOut] = []


class ResidentReach(_Out):
    web_push: int | None = None  # Web Push subscriptions in the zones (None: channel not configured)
    live_viewers: int = 0  # resident pages open right now (all zones)
    channels: list[str] = []  # every resident channel that will carry it


class AlertPreview(_Out):
    """What a confirmer sees before confirming: the alert, what it reaches and what it would take over."""

    alert: AlertOut
    sirens: int
    speakers: int
    devices: int
    gateways: int
    residents: ResidentReach
    affects: list[str] = []  # alerts it would take sirens over from (described)
    conflicts: list[str] = []  # alerts that would make confirming it refused (described)


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
