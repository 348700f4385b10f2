"""The alert engine: zones -> signed commands (one per gateway) -> per-device confirmation, retries, escalation.

An alert moves through phases, each tracked the same way: ``activate`` (the alert's signal), ``all_clear``
(an update of the same alert, version+1, sirens sound the all-clear signal) and ``stop`` (stop or
cancel). For every phase each target device goes pending -> accepted -> sounding|playing -> done, or
rejected/failed (with the gateway's reason), or unreachable. Devices not confirmed by
``confirm_deadline_s`` after the last send are re-sent (new jti, same alert) up to ``max_retries`` times
(failed devices too, since bus faults are often transient; a gateway's refusal is not re-sent); every
failure is escalated (error log, counter, ``escalations`` in the alert), and what is still not confirmed
after the last retry ends unreachable (no ack at all) or failed (accepted but never sounding).
``confirm_ms`` is hub-clock (monotonic) time from the start of the phase (the API call for an alert)
to the ack that confirmed the device (sounding/playing, or done for a silent test or a stop).

Hot-path rules: commands for all gateways are signed in one pass and published as parallel tasks; an ack
is applied in O(devices in the ack); SQLite writes are queued and committed in batches. Hooks (resident
notifications) and zone-state publishes run as tasks created alongside the command publishes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from contract import topics
from contract.command import CommandClaims, CommandParams, sign_command, token_sha256
from contract.errors import RejectReason
from contract.models import CAPABILITIES, Ack, AckStage, Action, Mode, Signal, ZoneState, ZoneStatus
from hub.config import HubSettings
from hub.errors import AlertNotFound, AlertStateError, NoTargets
from hub.keys import HubKeys
from hub.metrics import HubMetrics
from hub.models import AlertDetail, AlertOut, AlertRequest, DeviceTrackOut, Message, Summary
from hub.registry import OFFLINE, ONLINE, Registry
from hub.store import Store
from hub.zones import Zones

log = logging.getLogger(__name__)

PENDING, ACCEPTED, SOUNDING, PLAYING, DONE = "pending", "accepted", "sounding", "playing", "done"
REJECTED, FAILED, UNREACHABLE = "rejected", "failed", "unreachable"
CONFIRMED_STATES = frozenset({SOUNDING, PLAYING, DONE})
FAILED_STATES = frozenset({REJECTED, FAILED})

ACTIVE, STOPPED, ALL_CLEAR, CANCELLED, EXPIRED = "active", "stopped", "all_clear", "cancelled", "expired"
PHASE_ACTIVATE, PHASE_ALL_CLEAR, PHASE_STOP = "activate", "all_clear", "stop"
MAX_TARGETS = 256  # per command (contract limit); bigger gateways get several commands
SEND_CHUNK = 25  # gateways signed and put on the wire per step; the loop handles acks in between
MAX_ESCALATIONS = 1000

HEADLINES = {
    Signal.AIR_RAID: {"uk": "Повітряна тривога", "en": "Air raid alert"},
    Signal.ALL_CLEAR: {"uk": "Відбій повітряної тривоги", "en": "All clear"},
    Signal.CHEMICAL: {"uk": "Хімічна небезпека", "en": "Chemical hazard"},
    Signal.RADIATION: {"uk": "Радіаційна небезпека", "en": "Radiation hazard"},
    Signal.TEST: {"uk": "Перевірка системи оповіщення", "en": "Warning system test"},
    Signal.SILENT_TEST: {"uk": "Тиха перевірка", "en": "Silent test"},
}
EXERCISE_PREFIX = {"uk": "НАВЧАННЯ: ", "en": "EXERCISE: "}

AlertHook = Callable[[AlertOut, list[ZoneState]], Awaitable[None]]
Publish = Callable[[str, bytes, int, bool], Awaitable[bool]]
PublishNowait = Callable[[str, bytes, int, bool], bool]


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

    @property
    def outstanding(self) -> bool:
        """Still worth a retry: not confirmed, not refused by the gateway (a device failure may be
        transient, e.g. a Modbus timeout, so failed devices are retried), not given up."""
        return not self.given_up and self.state not in CONFIRMED_STATES and self.state != REJECTED

    def doc(self) -> dict:
        return {"gateway": self.gateway, "device": self.device, "kind": self.kind, "state": self.state,
                "reason": self.reason, "confirm_ms": self.confirm_ms, "accepted_ms": self.accepted_ms,
                "attempts": self.attempts, "updated_at": self.updated_at, "given_up": self.given_up}

    def reset(self) -> None:
        self.state, self.reason, self.confirm_ms, self.accepted_ms = PENDING, None, None, None
        self.attempts, self.given_up, self.updated_at = 0, False, time.time()


@dataclass(slots=True)
class CmdRef:
    alert: str
    gateway: str
    phase_seq: int
    targets: tuple[str, ...]


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
    status: str = ACTIVE
    version: int = 1
    phase: str = PHASE_ACTIVATE
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
    # runtime only (monotonic clock, not persisted)
    phase_t0: float = 0.0
    last_sent_mono: float = 0.0
    outstanding: int = 0
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    by_gateway: dict[str, list[Track]] = field(default_factory=dict)

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
        for t in self.tracks.values():
            if t.state in CONFIRMED_STATES:
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
        return Summary(total=len(self.tracks), confirmed=confirmed, failed=failed, unreachable=unreachable,
                       pending=pending, first_confirm_ms=times[0] if times else None,
                       last_confirm_ms=times[-1] if times else None, p50_confirm_ms=percentile(times, 50),
                       p99_confirm_ms=percentile(times, 99))

    def persist_doc(self) -> dict:
        return {"id": self.id, "signal": self.signal.value, "mode": self.mode.value, "zones": self.zones,
                "duration_s": self.duration_s, "created_at": self.created_at, "expires_at": self.expires_at,
                "message": self.message.model_dump(exclude_none=True) if self.message else None,
                "status": self.status, "version": self.version, "phase": self.phase, "phase_seq": self.phase_seq,
                "phase_signal": self.phase_signal.value, "phase_started_at": self.phase_started_at,
                "phase_ends_at": self.phase_ends_at, "attempt": self.attempt, "last_sent_at": self.last_sent_at,
                "tracking": self.tracking, "zones_settled": self.zones_settled, "updated_at": self.updated_at,
                "dispatch_ms": self.dispatch_ms,
                "escalations": self.escalations, "history": self.history,
                "targets": [[t.gateway, t.device, t.kind] for t in self.tracks.values()]}

    def row(self) -> tuple[str, float, dict]:
        return self.status, self.created_at, self.persist_doc()

    @classmethod
    def from_docs(cls, doc: dict, devices: Iterable[dict]) -> Alert:
        alert = cls(id=doc["id"], signal=Signal(doc["signal"]), mode=Mode(doc["mode"]), zones=list(doc["zones"]),
                    duration_s=int(doc["duration_s"]), created_at=doc["created_at"], expires_at=doc["expires_at"],
                    message=Message.model_validate(doc["message"]) if doc.get("message") else None,
                    status=doc["status"], version=doc["version"], phase=doc["phase"], phase_seq=doc["phase_seq"],
                    phase_signal=Signal(doc["phase_signal"]), phase_started_at=doc["phase_started_at"],
                    phase_ends_at=doc["phase_ends_at"], attempt=doc["attempt"], last_sent_at=doc["last_sent_at"],
                    tracking=doc["tracking"], zones_settled=doc.get("zones_settled", False),
                    dispatch_ms=doc.get("dispatch_ms"),
                    updated_at=doc["updated_at"], escalations=list(doc.get("escalations", ())),
                    history=list(doc.get("history", ())))
        for gw, dev, kind in doc.get("targets", ()):  # device rows not flushed yet when the hub died
            alert.tracks[(gw, dev)] = Track(gw, dev, kind, updated_at=doc["updated_at"])
        for d in devices:
            track = Track(**d)
            alert.tracks[(track.gateway, track.device)] = track
        alert.index()
        return alert

    def out(self, *, detail: bool = False) -> AlertOut:
        base = {k: v for k, v in self.persist_doc().items() if k in AlertOut.model_fields}
        base["summary"] = self.summary()
        if not detail:
            return AlertOut.model_validate(base)
        devices = [DeviceTrackOut.model_validate(t.doc()) for t in
                   sorted(self.tracks.values(), key=lambda t: (t.gateway, t.device))]
        return AlertDetail.model_validate({**base, "devices": devices})


class AlertEngine:
    def __init__(self, settings: HubSettings, keys: HubKeys, zones: Zones, registry: Registry, store: Store,
                 publish: Publish, metrics: HubMetrics, *, publish_nowait: PublishNowait | None = None, clock: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self.cfg = settings
        self.keys = keys
        self.zones = zones
        self.registry = registry
        self.store = store
        self.publish = publish
        self.publish_nowait = publish_nowait
        self.is_connected: Callable[[], bool] = lambda: True  # the hub wires in its MQTT connection state
        self.flush_writes: Callable[[], None] = lambda: None  # ... and the client's immediate socket write
        self.metrics = metrics
        self.clock = clock
        self.mono = mono
        self.alerts: dict[str, Alert] = {}
        self.hooks: list[AlertHook] = []
        self.zone_states: dict[str, ZoneState] = {}
        self._jti: dict[str, CmdRef] = {}
        self._token: dict[str, str] = {}
        self._trackers: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        registry.listeners.append(self._on_gateway)

    # ================================================================ operator actions
    async def start(self, req: AlertRequest) -> AlertOut:
        t0 = self.mono()
        now = self.clock()
        for zone in req.zones:
            self.zones.get(zone)  # raises UnknownZone with the known list
        need = "silent_test" if req.signal is Signal.SILENT_TEST else "activate"
        targets = {gw: kept for gw, devs in self.zones.resolve(req.zones, self.registry.devices_of).items()
                   if (kept := {d: k for d, k in devs.items() if k is None or need in CAPABILITIES[k]})}
        if not targets:
            raise NoTargets(f"zones {', '.join(req.zones)} have no known devices that can {need.replace('_', ' ')} "
                            "(gateways announce their devices in their birth message)")
        alert = Alert(id=new_alert_id(now), signal=req.signal, mode=req.mode, zones=list(req.zones),
                      duration_s=req.duration_s, created_at=now, expires_at=now + req.duration_s,
                      message=req.message, updated_at=now)
        for gw, devices in targets.items():
            for dev, kind in devices.items():
                alert.tracks[(gw, dev)] = Track(gw, dev, kind.value if kind else None, updated_at=now)
        self.alerts[alert.id] = alert
        self.metrics.alerts.labels(req.mode.value, req.signal.value).inc()
        log.warning("alert %s: %s %s in zones %s -> %d devices on %d gateways", alert.id, req.mode.value,
                    req.signal.value, ",".join(req.zones), len(alert.tracks), len(targets))
        self.store.audit("start", {"request": req.model_dump(mode="json", exclude_none=True),
                                   "devices": len(alert.tracks), "gateways": len(targets)}, alert.id)
        self._begin_phase(alert, PHASE_ACTIVATE, req.signal, t0=t0, ends_at=alert.expires_at, new_version=False)
        return alert.out()

    async def all_clear(self, alert_id: str) -> AlertOut:
        alert = self._get(alert_id)
        if alert.status not in (ACTIVE, STOPPED, EXPIRED):
            raise AlertStateError(f"alert {alert_id} is {alert.status}; all-clear needs an active, stopped or "
                                  "expired alert")
        now = self.clock()
        alert.status = ALL_CLEAR
        self.metrics.alert_ops.labels("all_clear").inc()
        self.store.audit("all_clear", {"version": alert.version + 1}, alert.id)
        self._begin_phase(alert, PHASE_ALL_CLEAR, Signal.ALL_CLEAR, t0=self.mono(),
                          ends_at=now + self.cfg.all_clear_duration_s, new_version=True)
        return alert.out()

    async def stop(self, alert_id: str) -> AlertOut:
        alert = self._get(alert_id)
        if alert.status not in (ACTIVE, ALL_CLEAR):
            raise AlertStateError(f"alert {alert_id} is {alert.status}; only an active or all-clear alert can "
                                  "be stopped")
        alert.status = STOPPED
        self.metrics.alert_ops.labels("stop").inc()
        self.store.audit("stop", {}, alert.id)
        self._begin_phase(alert, PHASE_STOP, alert.phase_signal, t0=self.mono(), ends_at=self.clock(),
                          new_version=False)
        return alert.out()

    async def cancel(self, alert_id: str) -> AlertOut:
        alert = self._get(alert_id)
        if alert.status == CANCELLED:
            raise AlertStateError(f"alert {alert_id} is already cancelled")
        alert.status = CANCELLED
        self.metrics.alert_ops.labels("cancel").inc()
        self.store.audit("cancel", {"version": alert.version + 1}, alert.id)
        self._begin_phase(alert, PHASE_STOP, alert.phase_signal, t0=self.mono(), ends_at=self.clock(),
                          new_version=True)
        return alert.out()

    def get(self, alert_id: str, *, devices: bool = True) -> AlertDetail:
        alert = self._get(alert_id)
        if not devices:
            return AlertDetail.model_validate({**alert.out().model_dump(), "devices": []})
        out = alert.out(detail=True)
        assert isinstance(out, AlertDetail)
        return out

    def list(self) -> list[AlertOut]:
        return [a.out() for a in sorted(self.alerts.values(), key=lambda a: a.created_at, reverse=True)]

    def _get(self, alert_id: str) -> Alert:
        try:
            return self.alerts[alert_id]
        except KeyError:
            raise AlertNotFound(f"no alert {alert_id!r}") from None

    # ================================================================ phases and sending
    def _begin_phase(self, alert: Alert, phase: str, signal: Signal, *, t0: float, ends_at: float,
                     new_version: bool) -> None:
        if alert.phase_seq > 0 or phase != PHASE_ACTIVATE:
            alert.history.append({"phase": alert.phase, "version": alert.version, "signal": alert.phase_signal.value,
                                  "started_at": alert.phase_started_at,
                                  "summary": alert.summary().model_dump()})
        if new_version:
            alert.version += 1
        alert.phase, alert.phase_signal = phase, signal
        alert.phase_seq += 1
        alert.phase_t0, alert.phase_started_at, alert.phase_ends_at = t0, self.clock(), ends_at
        alert.attempt, alert.tracking, alert.zones_settled = 0, True, phase == PHASE_STOP
        alert.dispatch_ms = None
        alert.updated_at = self.clock()
        for track in alert.tracks.values():
            track.reset()
            if self.registry.state_of(track.gateway) == OFFLINE:
                track.state, track.reason = UNREACHABLE, "gateway_offline"  # tentative: still sent and retried
        alert.settled = asyncio.Event()
        alert.index()
        alert.last_sent_at, alert.last_sent_mono = self.clock(), self.mono()
        self._save(alert)
        self._flush(devices=False)  # the alert and its targets are durable before the first command leaves
        # The first chunk of commands is signed, stored and written to the socket right here; then the zone
        # states and the hooks start as tasks, and the other chunks follow in a task that yields between
        # chunks, so hooks run alongside the sends (never before or after them in series) and early acks
        # are handled while later gateways are still being signed for.
        chunks = self._chunks(alert.tracks.values())
        old = self._trackers.pop(alert.id, None)
        if old is not None:
            old.cancel()
        if chunks:
            self._send(alert, chunks[0], retry=False)
        self._publish_zones(alert)
        self._trackers[alert.id] = self._spawn(self._phase(alert, alert.phase_seq, chunks[1:]))

    @staticmethod
    def _chunks(tracks: Iterable[Track]) -> list[list[Track]]:
        groups: dict[str, list[Track]] = {}
        for track in tracks:
            groups.setdefault(track.gateway, []).append(track)
        gws = list(groups)
        return [[t for gw in gws[i:i + SEND_CHUNK] for t in groups[gw]] for i in range(0, len(gws), SEND_CHUNK)]

    async def _phase(self, alert: Alert, seq: int, chunks: list[list[Track]]) -> None:
        for chunk in chunks:
            await asyncio.sleep(0)
            if alert.phase_seq != seq:
                return
            self._send(alert, chunk, retry=False)
        alert.dispatch_ms = round((self.mono() - alert.phase_t0) * 1000, 1)
        log.info("alert %s %s: %d commands on the wire %.1f ms after the request", alert.id, alert.phase,
                 sum(1 for _ in alert.by_gateway), alert.dispatch_ms)
        self._save(alert)
        await self._track(alert, seq)

    def _send(self, alert: Alert, tracks: list[Track], *, retry: bool) -> int:
        """Sign one command per gateway for ``tracks``, commit them, and hand them all to the MQTT client
        (written to the socket at once); nothing here waits per gateway."""
        groups: dict[str, list[Track]] = {}
        for track in tracks:
            groups.setdefault(track.gateway, []).append(track)
        iat = int(self.clock())
        act = Action.STOP if alert.phase == PHASE_STOP else Action.ACTIVATE
        params = CommandParams()
        if act is Action.ACTIVATE:
            remaining = alert.phase_ends_at - self.clock()
            duration = max(1, min(int(-(-remaining // 1)), self.cfg.all_clear_duration_s
                                  if alert.phase == PHASE_ALL_CLEAR else alert.duration_s))
            params = CommandParams(signal=alert.phase_signal, duration_s=duration)
        out: list[tuple[str, bytes]] = []
        now = self.clock()
        for gw, gw_tracks in groups.items():
            for i in range(0, len(gw_tracks), MAX_TARGETS):
                chunk = gw_tracks[i:i + MAX_TARGETS]
                jti = uuid.uuid4().hex
                targets = tuple(t.device for t in chunk)
                claims = CommandClaims(aud=gw, jti=jti, iat=iat, exp=iat + self.cfg.command_ttl_s, act=act,
                                       targets=targets, params=params, alert=alert.id, mode=alert.mode)
                token = sign_command(claims, self.keys.private, self.keys.kid)
                sha = token_sha256(token)
                self._jti[jti] = CmdRef(alert.id, gw, alert.phase_seq, targets)
                self._token[sha] = jti
                self.store.put_command(jti, alert.id, gw, alert.phase_seq, act.value, list(targets), now, sha)
                for t in chunk:
                    t.attempts += 1
                    self.store.put_device(alert.id, t.gateway, t.device, t)
                out.append((topics.gw(gw, topics.GwChannel.CMD), token.encode()))
        alert.last_sent_at, alert.last_sent_mono = now, self.mono()
        if retry:
            self._save(alert)  # (a phase's first send saves the alert once, after its last chunk)
        self._flush(devices=False)  # commands are durable before they leave: a restarted hub knows their acks
        if self.publish_nowait is not None:
            sent = sum(self.publish_nowait(topic, token, 1, False) for topic, token in out)
            self.flush_writes()
            self.metrics.commands_sent.labels(act.value).inc(sent)
            if sent < len(out):  # not connected: the tracker re-sends at the deadline
                self.metrics.publish_errors.labels("command").inc(len(out) - sent)
        else:
            for topic, token in out:
                self._spawn(self._publish_cmd(topic, token, act.value))
        if retry:
            self.metrics.command_retries.inc(len(out))
        return len(out)

    async def _publish_cmd(self, topic: str, token: bytes, act: str) -> None:
        if await self.publish(topic, token, 1, False):
            self.metrics.commands_sent.labels(act).inc()
        else:
            self.metrics.publish_errors.labels("command").inc()

    async def _track(self, alert: Alert, seq: int) -> None:
        """Retry what is not confirmed by the deadline; after max_retries give up and escalate."""
        while alert.phase_seq == seq and alert.outstanding:
            wait = alert.last_sent_mono + self.cfg.confirm_deadline_s - self.mono()
            if wait > 0:
                try:
                    await asyncio.wait_for(alert.settled.wait(), wait)
                except TimeoutError:
                    pass
                continue
            todo = [t for t in alert.tracks.values() if t.outstanding]
            if not todo:
                break
            ended = alert.phase != PHASE_STOP and self.clock() >= alert.phase_ends_at
            if not self.is_connected() and not ended:
                # Without a broker a retry cannot leave: do not burn attempts, wait for on_reconnect()
                alert.last_sent_mono = self.mono()
                continue
            if alert.attempt < self.cfg.max_retries and not ended:
                alert.attempt += 1
                log.warning("alert %s: retry %d/%d for %d devices not confirmed after %.1fs", alert.id,
                            alert.attempt, self.cfg.max_retries, len(todo), self.cfg.confirm_deadline_s)
                self.store.audit("retry", {"attempt": alert.attempt, "devices": len(todo)}, alert.id)
                self._send(alert, todo, retry=True)
                continue
            for t in todo:
                if t.state == FAILED:
                    pass  # escalated when it failed; it stays failed with the gateway's reason
                elif t.state == ACCEPTED:
                    t.state, t.reason = FAILED, "timeout"
                    self._escalate(alert, t, FAILED, "accepted but never confirmed")
                else:
                    t.state = UNREACHABLE
                    t.reason = "gateway_offline" if self.registry.state_of(t.gateway) == OFFLINE else "no_ack"
                    self._escalate(alert, t, UNREACHABLE, t.reason)
                t.given_up, t.updated_at = True, self.clock()
                self.store.put_device(alert.id, t.gateway, t.device, t)
            alert.recount()
        if alert.phase_seq == seq:
            alert.tracking = False
            alert.updated_at = self.clock()
            s = alert.summary()
            log.warning("alert %s %s: %d/%d confirmed, %d failed, %d unreachable, p99 %s ms", alert.id,
                        alert.phase, s.confirmed, s.total, s.failed, s.unreachable, s.p99_confirm_ms)
            self._save(alert)
            if self._trackers.get(alert.id) is asyncio.current_task():
                del self._trackers[alert.id]

    def _escalate(self, alert: Alert, track: Track, outcome: str, reason: str) -> None:
        log.error("alert %s: %s/%s %s (%s) [%s %s]", alert.id, track.gateway, track.device, outcome, reason,
                  alert.mode.value, alert.phase)
        self.metrics.escalations.labels(outcome, reason_label(track.reason or reason)).inc()
        if len(alert.escalations) < MAX_ESCALATIONS:
            alert.escalations.append({"gateway": track.gateway, "device": track.device, "outcome": outcome,
                                      "reason": reason, "phase": alert.phase, "ts": self.clock()})
        self.store.audit("escalation", {"gateway": track.gateway, "device": track.device, "outcome": outcome,
                                        "reason": reason}, alert.id)
        self._save(alert)

    # ================================================================ acks (sync, never raise)
    def on_ack(self, ack: Ack) -> None:
        ref = self._jti.get(ack.cmd)
        if ref is None and ack.token_sha256:
            ref = self._jti.get(self._token.get(ack.token_sha256, ""))
        if ref is None:
            self.metrics.acks_ignored.labels("unknown_cmd").inc()
            return
        if ref.gateway != ack.gateway:
            self.metrics.acks_ignored.labels("wrong_gateway").inc()
            return
        alert = self.alerts.get(ref.alert)
        if alert is None or ref.phase_seq != alert.phase_seq:
            self.metrics.acks_ignored.labels("stale_phase").inc()
            return
        self.metrics.acks.labels(ack.stage.value).inc()
        devices = ack.devices or (ref.targets if ack.stage in (AckStage.ACCEPTED, AckStage.REJECTED,
                                                                 AckStage.FAILED) else ())
        reason = ack.reason or ack.detail
        for dev in devices:
            track = alert.tracks.get((ack.gateway, dev))
            if track is None:
                self.metrics.acks_ignored.labels("unknown_device").inc()
                continue
            self._apply(alert, track, ack.stage, reason)

    def _apply(self, alert: Alert, track: Track, stage: AckStage, reason: str | None) -> None:
        was_outstanding = track.outstanding
        now_ms = round((self.mono() - alert.phase_t0) * 1000, 1)
        state = track.state
        if stage is AckStage.ACCEPTED:
            if state in (PENDING, UNREACHABLE, FAILED):  # FAILED: a retry of a failed device was accepted
                track.state, track.reason = ACCEPTED, None
            if track.accepted_ms is None:
                track.accepted_ms = now_ms
        elif stage in (AckStage.SOUNDING, AckStage.PLAYING):
            if alert.phase == PHASE_STOP or state == DONE:
                return
            track.state, track.reason = stage.value, None
            self._confirm(track, now_ms)
        elif stage is AckStage.DONE:
            if state in FAILED_STATES:
                return
            track.state, track.reason = DONE, None
            self._confirm(track, now_ms)
        else:  # rejected / failed
            if stage is AckStage.REJECTED and state in CONFIRMED_STATES:
                return  # a duplicate refused after the device already confirmed: nothing changed
            track.state, track.reason = stage.value, (reason or "unspecified")[:64]
            self._escalate(alert, track, stage.value, track.reason)
        track.updated_at = self.clock()
        self.store.put_device(alert.id, track.gateway, track.device, track)
        if was_outstanding and not track.outstanding:
            alert.outstanding -= 1
            if alert.outstanding <= 0:
                alert.settled.set()

    def _confirm(self, track: Track, now_ms: float) -> None:
        if track.confirm_ms is None:
            track.confirm_ms = now_ms
            self.metrics.confirm.observe(now_ms / 1000)

    # ================================================================ gateways coming and going
    def _on_gateway(self, gateway: str, state: str) -> None:
        for alert_id in list(self._trackers):
            alert = self.alerts[alert_id]
            tracks = [t for t in alert.by_gateway.get(gateway, ()) if t.outstanding]
            if not tracks:
                continue
            if state == ONLINE:
                log.info("alert %s: gateway %s is online again, re-sending to %d devices", alert.id, gateway,
                         len(tracks))
                self._send(alert, tracks, retry=True)
            elif state == OFFLINE:
                for t in tracks:
                    if t.state == PENDING:
                        t.state, t.reason, t.updated_at = UNREACHABLE, "gateway_offline", self.clock()
                        self.store.put_device(alert.id, t.gateway, t.device, t)

    def on_reconnect(self) -> None:
        """After an MQTT (re)connect: re-send what is still outstanding (it may never have left)."""
        for alert_id in list(self._trackers):
            alert = self.alerts[alert_id]
            tracks = [t for t in alert.tracks.values() if t.outstanding]
            if tracks:
                log.warning("alert %s: MQTT (re)connected, re-sending to %d outstanding devices", alert.id,
                            len(tracks))
                self._send(alert, tracks, retry=True)

    # ================================================================ zone states and hooks
    def _zone_status(self, zone: str, trigger: Alert) -> ZoneState:
        now = self.clock()
        live = [a for a in self.alerts.values() if zone in a.zones and a.status == ACTIVE and now < a.expires_at]
        source: Alert | None = None
        status = ZoneStatus.IDLE
        if live:
            source, status = max(live, key=lambda a: a.created_at), ZoneStatus.ACTIVE
        elif trigger.status == ALL_CLEAR and now < trigger.phase_ends_at:
            source, status = trigger, ZoneStatus.ALL_CLEAR
        elif trigger.status == CANCELLED:
            source, status = trigger, ZoneStatus.CANCELLED
        version = self.zone_states[zone].version + 1 if zone in self.zone_states else 1
        if source is None:
            return ZoneState(zone=zone, version=version, status=status, ts=now)
        signal = source.phase_signal if status is ZoneStatus.ALL_CLEAR else source.signal
        headline = dict(HEADLINES[signal])
        if source.message and status is ZoneStatus.ACTIVE:
            headline.update(source.message.model_dump(exclude_none=True))
        if status is ZoneStatus.CANCELLED:
            headline = {"uk": "Скасовано: " + HEADLINES[source.signal]["uk"],
                        "en": "Cancelled: " + HEADLINES[source.signal]["en"]}
        if source.mode is Mode.EXERCISE:
            headline = {k: EXERCISE_PREFIX.get(k, "EXERCISE: ") + v for k, v in headline.items()}
        expires = source.expires_at if status is ZoneStatus.ACTIVE else (
            source.phase_ends_at if status is ZoneStatus.ALL_CLEAR else None)
        return ZoneState(zone=zone, version=version, status=status, alert=source.id, signal=signal,
                         mode=source.mode, ts=now, expires=expires, headline=headline)

    def _publish_zones(self, alert: Alert) -> None:
        states = []
        for zone in alert.zones:
            state = self._zone_status(zone, alert)
            self.zone_states[zone] = state
            self.store.put_zone_state(zone, state.version, state.model_dump(mode="json"))
            states.append(state)
            self._spawn(self._publish_zone(state))
        snapshot = alert.out()
        for hook in self.hooks:
            self._spawn(self._run_hook(hook, snapshot, states))

    async def _publish_zone(self, state: ZoneState) -> None:
        if not await self.publish(topics.zone_state(state.zone), state.to_bytes(), 1, True):
            self.metrics.publish_errors.labels("zone_state").inc()

    async def republish_zone_states(self) -> None:
        """After a (re)connect: the broker may have lost retained messages."""
        await asyncio.gather(*(self._publish_zone(s) for s in self.zone_states.values()))

    async def _run_hook(self, hook: AlertHook, alert: AlertOut, states: list[ZoneState]) -> None:
        name = getattr(hook, "__qualname__", repr(hook))[:60]
        try:
            await hook(alert, states)
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken hook must never break alerting: log and count
            log.exception("alert hook %s failed for %s", name, alert.id)
            self.metrics.hook_errors.labels(name).inc()

    # ================================================================ clock, persistence, restart
    def tick(self) -> None:
        """Expire alerts and end all-clear windows (called periodically)."""
        now = self.clock()
        for alert in self.alerts.values():
            if alert.zones_settled:
                continue
            if alert.status == ACTIVE:
                if now < alert.expires_at:
                    continue
                alert.status = EXPIRED
                log.warning("alert %s expired", alert.id)
                self.store.audit("expired", {}, alert.id)
            elif alert.status == ALL_CLEAR and now < alert.phase_ends_at:
                continue
            alert.zones_settled = True
            self._publish_zones(alert)
            self._save(alert)

    def prune(self, keep_s: float = 7200.0) -> int:
        """Forget command ids of alerts finished more than ``keep_s`` ago (late done acks are long past)."""
        now = self.clock()
        finished = {a.id for a in self.alerts.values() if not a.tracking and a.status not in (ACTIVE, ALL_CLEAR)
                    and now - a.updated_at > keep_s}
        if not finished:
            return 0
        stale = [jti for jti, ref in self._jti.items() if ref.alert in finished]
        for jti in stale:
            del self._jti[jti]
        self._token = {sha: jti for sha, jti in self._token.items() if jti in self._jti}
        return len(stale)

    async def run(self, interval_s: float = 0.25) -> None:
        last_prune = self.mono()
        while True:
            self.tick()
            if self.mono() - last_prune > 60:
                last_prune = self.mono()
                self.prune()
            await asyncio.sleep(interval_s)

    def resume(self) -> int:
        """Load every alert from SQLite and resume tracking those whose phase was still being tracked."""
        for zone, doc in self.store.load_zone_states().items():
            self.zone_states[zone] = ZoneState.model_validate(doc)
        resumed = 0
        now, mono = self.clock(), self.mono()
        for doc in self.store.load_alerts():
            try:
                alert = Alert.from_docs(doc, self.store.load_devices(doc["id"]))
            except (KeyError, TypeError, ValueError) as exc:  # a damaged row must not keep the hub down
                self.metrics.store_errors.inc()
                log.error("skipping unreadable alert %s in the hub state: %r", doc.get("id"), exc)
                continue
            self.alerts[alert.id] = alert
            alert.phase_t0 = mono - (now - alert.phase_started_at)
            alert.last_sent_mono = mono - (now - alert.last_sent_at)
            for cmd in self.store.load_commands(alert.id, alert.phase_seq):
                self._jti[cmd["jti"]] = CmdRef(alert.id, cmd["gateway"], alert.phase_seq, tuple(cmd["targets"]))
                self._token[cmd["token_sha256"]] = cmd["jti"]
                sent = {(cmd["gateway"], dev) for dev in cmd["targets"]}
                for key in sent & set(alert.tracks):
                    alert.tracks[key].attempts = max(alert.tracks[key].attempts, 1)
            alert.index()
            if alert.tracking:
                resumed += 1
                log.warning("resuming alert %s (%s, attempt %d, %d devices outstanding)", alert.id, alert.phase,
                            alert.attempt, alert.outstanding)
                self._trackers[alert.id] = self._spawn(self._track(alert, alert.phase_seq))
        return resumed

    def _save(self, alert: Alert) -> None:
        alert.updated_at = self.clock()
        self.store.put_alert(alert.id, alert)  # serialised at the next flush: many changes, one write

    def _flush(self, *, devices: bool = True) -> None:
        try:
            self.store.flush(devices=devices)
        except Exception:  # StoreError: keep alerting; writes are retried by the next flush
            self.metrics.store_errors.inc()
            log.exception("hub state write failed")

    def _spawn(self, coro: Awaitable) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
