"""API shapes of the violations register (dozor/client.py parses answers into these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

State = Literal["candidate", "confirmed", "dismissed"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class NoiseEventOut(_Out):
    id: str  # the Event id
    record_id: str = ""  # the signed record's id (the gateway sends it as the Event id too)
    gateway: str
    sensor: str
    zone: str | None = None
    lat: float | None = None
    lon: float | None = None
    distance_m: float | None = None
    start: float
    end: float
    peak: float
    lafmax: float
    lafmax_75: float
    sel: float
    klass: str = Field(alias="class")
    scores: dict[str, float] = {}
    suppressed: bool
    suppression: list[str] = []
    flags: list[str] = []
    candidate: bool
    enforceable: bool
    signature: Literal["verified", "unverified"]
    kid: str | None = None
    key_source: str | None = None
    signature_detail: str | None = None
    state: State
    received: float
    updated: float


class AuditEntry(_Out):
    seq: int
    ts: float
    who: str
    action: str
    note: str
    previous: str | None = None
    state: str


class NoiseEventDetail(NoiseEventOut):
    record: dict[str, Any]
    audit: list[AuditEntry] = []
    blockers: list[str] = []  # why it can never be confirmed (empty: it can)


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    action: Literal["confirm", "dismiss"]
    note: str = Field(min_length=1, max_length=2000, pattern=r"\S")
    # the hub records the authenticated user as the reviewer; a declared name is only kept in the audit record
    reviewer: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")


class SensorCount(_Out):
    gateway: str
    sensor: str
    zone: str | None = None
    events: int
    confirmed: int
    max_lafmax_75: float | None = None


class NoiseReport(_Out):
    month: str
    from_: str = Field(alias="from")
    to: str
    total: int
    enforceable: int
    suppressed: int
    unverified: int
    by_state: dict[str, int] = {}
    by_zone: dict[str, dict[str, int]] = {}
    by_class: dict[str, dict[str, int]] = {}
    top_sensors: list[SensorCount] = []
