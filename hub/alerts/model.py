"""The alert record the engine works on: per-device tracks, the command index, summaries, and the documents
it is persisted as (hub/store.py) and answered as (hub/models.py). No I/O."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from contract.errors import RejectReason
from contract.models import Mode, Signal
from hub.alerts.actors import label
from hub.alerts.lifecycle import Phase, State
from hub.models import AlertDetail, AlertOut, DeviceTrackOut, Message, Summary

PENDING, ACCEPTED, SOUNDING, PLAYING, DONE = "pending", "accepted", "sounding", "playing", "done"
REJECTED, FAILED, UNREACHABLE = "rejected", "failed", "unreachable"
CONFIRMED_STATES = frozenset({SOUNDING, PLAYING, DONE})
FAILED_STATES = frozenset({REJECTED, FAILED})

ACTIVE, STOPPED, ALL_CLEAR = State.ACTIVE, State.STOPPED, State.ALL_CLEAR
CANCELLED, EXPIRED = State.CANCELLED, State.EXPIRED
PHASE_ACTIVATE, PHASE_ALL_CLEAR, PHASE_STOP = Phase.ACTIVATE, Phase.ALL_CLEAR, Phase.STOP


def new_alert_id(now: float) -> str:
    return f"A-{datetime.fromtimestamp(now, UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


KNOWN_REASONS = frozenset({r.value for r in RejectReason} | {
    "unreachable", "timeout", "asset_mismatch", "selftest_failed", "no_ack", "gateway_offline",
    "accepted but never confirmed"})


def reason_label(reason: str) -> str:
    """A bounded metric label for a gateway-supplied reason (free text never becomes a label value)."""
    if reason in KNOWN_REASONS:
        return reason
    return "fault" if reason.startswith("fault:") else "other"


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil
    return sorted_values[int(rank) - 1]


@dataclass(slots=True)
class Track:
    gateway: str
    device: str
    kind: str | None
    state: str = PENDING
    reason: str | None = None
    confirm_ms: float | None = None
    accepted_ms: float | None = None
    attempts: int = 0
    updated_at: float | None = None
    given_up: bool = False
    superseded_by: str | None = None  # another alert took this device over (hub/alerts/policy.py): never sent again

    @property
    def outstanding(self) -> bool:
        """Still worth a retry: not confirmed, not refused by the gateway (a device failure may be
        transient, e.g. a Modbus timeout, so failed devices are retried), not given up, not taken over."""
        return (not self.given_up and self.superseded_by is None and self.state not in CONFIRMED_STATES
                and self.state != REJECTED)

    def doc(self) -> dict:
        return {"gateway": self.gateway, "device": self.device, "kind": self.kind, "state": self.state,
                "reason": self.reason, "confirm_ms": self.confirm_ms, "accepted_ms": self.accepted_ms,
                "attempts": self.attempts, "updated_at": self.updated_at, "given_up": self.given_up,
                "superseded_by": self.superseded_by}

    def reset(self, now: float | None = None) -> None:
        if self.superseded_by is not None:
            return  # taken over by another alert: stays out of every later phase
        self.state, self.reason, self.confirm_ms, self.accepted_ms = PENDING, None, None, None
        self.attempts, self.given_up, self.updated_at = 0, False, time.time() if now is None else now


@dataclass(slots=True)
class CmdRef:
    alert: str
    gateway: str
    phase_seq: int
    targets: tuple[str, ...]
    act: str = ""  # "stop": a late done ack of an earlier stop still moves the device forward


@dataclass
class Alert:
    id: str
    signal: Signal
    mode: Mode
    zones: list[str]
    duration_s: int
    created_at: float
    expires_at: float
    message: Message | None = None
    status: State = ACTIVE
    version: int = 1
    phase: Phase = PHASE_ACTIVATE
    phase_seq: int = 0
    phase_signal: Signal = Signal.AIR_RAID
    phase_started_at: float = 0.0
    phase_ends_at: float = 0.0
    attempt: int = 0
    last_sent_at: float = 0.0
    tracking: bool = True
    zones_settled: bool = False  # the zone states reflect the end of this alert's current phase
    dispatch_ms: float | None = None  # phase start -> last command of the phase's first send on the wire
    updated_at: float = 0.0
    escalations: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    tracks: dict[tuple[str, str], Track] = field(default_factory=dict)
    requested_by: dict | None = None  # the Actor who started it (name, role, via)
    acted_by: dict | None = None  # the Actor of the current phase (start, all-clear, stop, cancel)
    confirmed_by: dict | None = None  # the second person (two-person rule)
    confirm_by: float | None = None  # a pending request expires unsent at this time
    break_glass: str | None = None  # the reason, when one supervisor sent it alone
    supersedes: list[str] = field(default_factory=list)  # alerts whose sirens this one took over
    superseded_by: list[str] = field(default_factory=list)  # alerts that took sirens over from this one
    affects: list[str] = field(default_factory=list)  # a pending request: what confirming it would take over
    # runtime only (monotonic clock, not persisted)
    phase_t0: float = 0.0
    last_sent_mono: float = 0.0
    outstanding: int = 0
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    by_gateway: dict[str, list[Track]] = field(default_factory=dict)
    targets_json: str | None = field(default=None, repr=False)  # the target list as JSON, made once (row())

    def by_label(self) -> str | None:
        """Who ordered the current phase, as the signed command's ``by`` claim and CAP <senderName> say it:
        "olena (operator), confirmed by marta (supervisor)" for a confirmed activation, "marta (supervisor),
        break glass", else the phase's actor ("taras (operator)" for his stop)."""
        if self.phase is Phase.ACTIVATE and self.confirmed_by is not None:
            return f"{label(self.requested_by)}, confirmed by {label(self.confirmed_by)}"[:160]
        if self.phase is Phase.ACTIVATE and self.break_glass is not None:
            return f"{label(self.requested_by)}, break glass"[:160]
        return label(self.acted_by) if self.acted_by is not None else None

    @property
    def sent(self) -> bool:
        """Commands of this alert ever left the hub (False for a request nobody confirmed)."""
        return self.phase_seq > 0

    @property
    def finished(self) -> bool:
        """Nothing left to do: not waiting, not live, no phase tracked, zone states settled."""
        return (self.status not in (State.PENDING_CONFIRMATION, State.ACTIVE)  # all-clear: once its window ended
                and not self.tracking and self.zones_settled)

    def index(self) -> None:
        self.by_gateway = {}
        for track in self.tracks.values():
            self.by_gateway.setdefault(track.gateway, []).append(track)
        self.recount()

    def recount(self) -> None:
        self.outstanding = sum(1 for t in self.tracks.values() if t.outstanding)
        if self.outstanding == 0:
            self.settled.set()
        else:
            self.settled.clear()

    def summary(self) -> Summary:
        confirmed = failed = unreachable = pending = 0
        times: list[float] = []
        superseded = 0
        for t in self.tracks.values():
            if t.superseded_by is not None:
                superseded += 1
            elif t.state in CONFIRMED_STATES:
                confirmed += 1
            elif t.state in FAILED_STATES:
                failed += 1
            elif t.state == UNREACHABLE:
                unreachable += 1
            else:
                pending += 1
            if t.confirm_ms is not None:
                times.append(t.confirm_ms)
        times.sort()
        return Summary(total=len(self.tracks) - superseded, superseded=superseded, confirmed=confirmed, failed=failed, unreachable=unreachable,
                       pending=pending, first_confirm_ms=times[0] if times else None,
                       last_confirm_ms=times[-1] if times else None, p50_confirm_ms=percentile(times, 50),
                       p99_confirm_ms=percentile(times, 99))

    def persist_doc(self, *, targets: bool = True) -> dict:
        """The alert's row; ``targets=False`` leaves out the list of every (gateway, device, kind) it targets
        (10,000 entries for a whole city), which only the store needs."""
        doc = {"id": self.id, "signal": self.signal.value, "mode": self.mode.value, "zones": self.zones,
                "duration_s": self.duration_s, "created_at": self.created_at, "expires_at": self.expires_at,
                "message": self.message.model_dump(exclude_none=True) if self.message else None,
                "status": self.status.value, "version": self.version, "phase": self.phase.value, "phase_seq": self.phase_seq,
                "phase_signal": self.phase_signal.value, "phase_started_at": self.phase_started_at,
                "phase_ends_at": self.phase_ends_at, "attempt": self.attempt, "last_sent_at": self.last_sent_at,
                "tracking": self.tracking, "zones_settled": self.zones_settled, "updated_at": self.updated_at,
                "dispatch_ms": self.dispatch_ms, "by": self.by_label(),
                "confirmed_by": self.confirmed_by, "confirm_by": self.confirm_by, "break_glass": self.break_glass,
                "supersedes": self.supersedes, "superseded_by": self.superseded_by, "affects": self.affects,
                "escalations": self.escalations, "history": self.history,
                "requested_by": self.requested_by, "acted_by": self.acted_by}
        if targets:
            doc["targets"] = [[t.gateway, t.device, t.kind] for t in self.tracks.values()]
        return doc

    def row(self) -> tuple[str, float, str]:
        """(status, created, the persisted doc as JSON). The target list (10,000 entries for a city; the tracks
        are fixed once the alert exists) is serialised once, not at every save of the alert."""
        if self.targets_json is None:
            self.targets_json = json.dumps([[t.gateway, t.device, t.kind] for t in self.tracks.values()],
                                           separators=(",", ":"))
        head = json.dumps(self.persist_doc(targets=False), separators=(",", ":"), default=str)
        return self.status.value, self.created_at, f'{head[:-1]},"targets":{self.targets_json}}}'

    @classmethod
    def from_docs(cls, doc: dict, devices: Iterable[dict]) -> Alert:
        alert = cls(id=doc["id"], signal=Signal(doc["signal"]), mode=Mode(doc["mode"]), zones=list(doc["zones"]),
                    duration_s=int(doc["duration_s"]), created_at=doc["created_at"], expires_at=doc["expires_at"],
                    message=Message.model_validate(doc["message"]) if doc.get("message") else None,
                    status=State(doc["status"]), version=doc["version"], phase=Phase(doc["phase"]), phase_seq=doc["phase_seq"],
                    phase_signal=Signal(doc["phase_signal"]), phase_started_at=doc["phase_started_at"],
                    phase_ends_at=doc["phase_ends_at"], attempt=doc["attempt"], last_sent_at=doc["last_sent_at"],
                    tracking=doc["tracking"], zones_settled=doc.get("zones_settled", False),
                    dispatch_ms=doc.get("dispatch_ms"),
                    updated_at=doc["updated_at"], escalations=list(doc.get("escalations", ())),
                    history=list(doc.get("history", ())), requested_by=doc.get("requested_by"),
                    acted_by=doc.get("acted_by"), confirmed_by=doc.get("confirmed_by"),
                    confirm_by=doc.get("confirm_by"), break_glass=doc.get("break_glass"),
                    supersedes=list(doc.get("supersedes", ())), superseded_by=list(doc.get("superseded_by", ())),
                    affects=list(doc.get("affects", ())))
        for gw, dev, kind in doc.get("targets", ()):  # device rows not flushed yet when the hub died
            alert.tracks[(gw, dev)] = Track(gw, dev, kind, updated_at=doc["updated_at"])
        for d in devices:
            track = Track(**d)
            alert.tracks[(track.gateway, track.device)] = track
        alert.index()
        return alert

    def out(self, *, detail: bool = False) -> AlertOut:
        base = {k: v for k, v in self.persist_doc(targets=False).items() if k in AlertOut.model_fields}
        base["summary"] = self.summary()
        if not detail:
            return AlertOut.model_validate(base)
        devices = [DeviceTrackOut.model_validate(t.doc()) for t in
                   sorted(self.tracks.values(), key=lambda t: (t.gateway, t.device))]
        return AlertDetail.model_validate({**base, "devices": devices})

