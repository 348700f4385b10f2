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

The package's seams: ``lifecycle`` (pure state machine), ``model`` (the record), ``dispatch`` (signing and
sending a phase), ``retry`` (retries, escalation, re-sends), ``tracking`` (acks), ``zonestate`` (rendering and publishing zone states),
``persistence`` (store, restart), ``policy`` (two-person rule, overlap precedence), ``actions`` (who did
what). This module holds the operator actions and the clock.

Two-person rule: a start that the ``[two_person]`` policy covers becomes ``pending_confirmation``; nothing is
sent (no command, no zone state, no resident hook) until a supervisor other than the requester confirms it
within ``confirm_window_s``; a request not confirmed in time expires unsent. Break glass lets one supervisor
send alone with a reason (logged at CRITICAL, audited, counted).

Memory holds only alerts that are pending, live or finished less than ``finished_in_memory_s`` ago; older
ones are read from the store on demand and deleted after ``alert_retention_days``. ``tick`` walks only the
open alerts (pending, or zone states not yet settled).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from contract.models import CAPABILITIES, Signal, ZoneState
from hub.alerts.actors import actor_doc, label, may_confirm, same_person
from hub.alerts.base import AlertHook, Publish, PublishNowait
from hub.alerts.dispatch import DispatchMixin
from hub.alerts.lifecycle import Facts, IllegalTransition, Op, State, initial_state, next_state
from hub.alerts.model import (
    ACTIVE,
    ALL_CLEAR,
    PHASE_ACTIVATE,
    PHASE_ALL_CLEAR,
    PHASE_STOP,
    Alert,
    CmdRef,
    Track,
    new_alert_id,
)
from hub.alerts.overlap import OverlapMixin
from hub.alerts.persistence import PersistenceMixin
from hub.alerts.policy import needs_second_person
from hub.alerts.retry import RetryMixin
from hub.alerts.signer import GC_PAUSE
from hub.alerts.tracking import TrackingMixin
from hub.alerts.zonestate import ZoneStateMixin
from hub.config import HubSettings, TwoPersonSettings
from hub.errors import AlertNotFound, AlertStateError, NotAllowed, NoTargets
from hub.keys import HubKeys
from hub.metrics import HubMetrics
from hub.models import AlertDetail, AlertOut, AlertRequest
from hub.registry import Registry
from hub.signproc import SignerProcess
from hub.store import Store
from hub.zones import Zones
from runtime.ratelog import RateLimitedLog

log = logging.getLogger("hub.alerts")


class AlertEngine(DispatchMixin, RetryMixin, TrackingMixin, ZoneStateMixin, PersistenceMixin, OverlapMixin):
    def __init__(self, settings: HubSettings, keys: HubKeys, zones: Zones, registry: Registry, store: Store,
                 publish: Publish, metrics: HubMetrics, *, publish_nowait: PublishNowait | None = None,
                 clock: Callable[[], float] = time.time, mono: Callable[[], float] = time.monotonic,
                 two_person: TwoPersonSettings | None = None) -> None:
        self.cfg = settings
        self.two_person = two_person or TwoPersonSettings()
        self.keys = keys
        self.zones = zones
        self.registry = registry
        self.store = store
        self.publish = publish
        self.publish_nowait = publish_nowait
        self.is_connected: Callable[[], bool] = lambda: True  # the hub wires in its MQTT connection state
        self.flush_writes: Callable[[], None] = lambda: None  # ... and the client's immediate socket write
        self.send_first = None  # ... and its control connection's gate (hub/sendfirst.py)
        self.audit_sink = None  # ... and the audit chain (hub.audit.append), when there is one
        self.metrics = metrics
        self.clock = clock
        self.mono = mono
        self.alerts: dict[str, Alert] = {}
        self._open: dict[str, Alert] = {}
        self.holder: dict[tuple[str, str], str] = {}
        self.hooks: list[AlertHook] = []
        self.zone_states: dict[str, ZoneState] = {}
        self._jti: dict[str, CmdRef] = {}
        self._token: dict[str, str] = {}
        self._trackers: dict[str, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._task_log = RateLimitedLog(log, 30.0)
        self.signer = SignerProcess()  # signs a big phase's later steps while the loop sends earlier ones
        registry.listeners.append(self._on_gateway)

    # ================================================================ operator actions
    def needs_second_person(self, req: AlertRequest) -> bool:
        return needs_second_person(req.mode, req.signal, self.two_person.actual, self.two_person.exercise)

    async def start(self, req: AlertRequest, actor: object = None) -> AlertOut:
        """A new alert: sent at once, or ``pending_confirmation`` when the two-person rule covers it (then
        nothing leaves the hub until ``confirm``). Break glass sends at once for a supervisor with a reason."""
        gc_back = GC_PAUSE.hold()  # building a city's 10,000 tracks is no time for a collection either
        try:
            return self._start(req, actor, self.mono())
        finally:
            gc_back()  # the phase, if one began, holds the collector off until its commands are out

    def _start(self, req: AlertRequest, actor: object, t0: float) -> AlertOut:
        now = self.clock()
        who = actor_doc(actor)
        if req.signal is Signal.ALL_CLEAR:
            self.metrics.alert_refusals.labels("start").inc()
            raise AlertStateError("cannot start a new alert with the all-clear signal: the all-clear is an update "
                                  "of the alert it ends (`dozor alert all-clear ALERT_ID`)")
        for zone in req.zones:
            self.zones.get(zone)  # raises UnknownZone with the known list
        need = "silent_test" if req.signal is Signal.SILENT_TEST else "activate"
        targets = {gw: kept for gw, devs in self.zones.resolve(req.zones, self.registry.devices_of).items()
                   if (kept := {d: k for d, k in devs.items() if k is None or need in CAPABILITIES[k]})}
        if not targets:
            raise NoTargets(f"zones {', '.join(req.zones)} have no known devices that can {need.replace('_', ' ')} "
                            "(gateways announce their devices in their birth message)")
        second = self.needs_second_person(req)
        if req.break_glass:
            self._check_break_glass(req, who)
        alert = Alert(id=new_alert_id(now), signal=req.signal, mode=req.mode, zones=list(req.zones),
                      duration_s=req.duration_s, created_at=now, expires_at=now + req.duration_s,
                      message=req.message, updated_at=now, requested_by=who, acted_by=who,
                      status=initial_state(second and not req.break_glass))
        for gw, devices in targets.items():
            for dev, kind in devices.items():
                alert.tracks[(gw, dev)] = Track(gw, dev, kind.value if kind else None, updated_at=now)
        take = self._check_overlap(alert)  # 409 naming the alerts when a higher one holds its sirens
        self.alerts[alert.id] = alert
        detail = {"request": req.model_dump(mode="json", exclude_none=True), "devices": len(alert.tracks),
                  "gateways": len(targets)}
        if alert.status is State.PENDING_CONFIRMATION:
            alert.tracking, alert.confirm_by = False, now + self.two_person.confirm_window_s
            alert.affects = list(take)
            alert.index()
            self._open[alert.id] = alert
            log.warning("alert %s: %s %s in zones %s requested by %s: waiting for a second person until %s",
                        alert.id, req.mode.value, req.signal.value, ",".join(req.zones), label(who),
                        time.strftime("%H:%M:%S", time.gmtime(alert.confirm_by)))
            self._audit("request", {**detail, "confirm_by": alert.confirm_by, "affects": alert.affects}, alert.id,
                        who)
            self._save(alert)
            self._flush(devices=False)
            return alert.out()
        if req.break_glass:
            alert.break_glass = req.reason
            self.metrics.break_glass.labels(req.mode.value, req.signal.value).inc()
            log.critical("BREAK GLASS: alert %s (%s %s in zones %s) sent by %s alone: %s", alert.id, req.mode.value,
                         req.signal.value, ",".join(req.zones), label(who), req.reason)
            self._audit("break_glass", {**detail, "reason": req.reason}, alert.id, who)
        self._audit("start", detail, alert.id, who)
        alert.acted_by = who
        self._activate(alert, take, t0)
        return alert.out()

    async def confirm(self, alert_id: str, actor: object) -> AlertOut:
        """The second person: a supervisor who did not request it, within the window. Then it is sent."""
        t0 = self.mono()
        alert = self._get(alert_id)
        who = actor_doc(actor)
        if alert.status is State.PENDING_CONFIRMATION and self.clock() >= (alert.confirm_by or 0):
            self._expire_request(alert)  # the tick may not have run yet: the window is the rule, not the tick
        self._next(alert, Op.CONFIRM)  # 409 after expiry, withdrawal, or for an alert that is not waiting
        if same_person(alert.requested_by, who):
            self.metrics.alert_refusals.labels("self_confirm").inc()
            self._audit("confirm_refused", {"why": "self"}, alert.id, who)
            raise NotAllowed(f"cannot confirm alert {alert.id}: you requested it yourself. The two-person rule "
                             "needs a different supervisor (or, in an emergency, a supervisor's --break-glass)")
        if not may_confirm(who):
            self.metrics.alert_refusals.labels("confirm_role").inc()
            raise NotAllowed(f"cannot confirm alert {alert.id}: {who['name']} acts as {who['role']}; confirming "
                             "needs a supervisor")
        take = self._check_overlap(alert)  # what holds its sirens may have changed while it waited
        now = self.clock()
        alert.status = State.ACTIVE
        alert.confirmed_by = who
        alert.expires_at = now + alert.duration_s  # the duration runs from the moment it is sent
        alert.affects = []
        alert.acted_by = who
        self._audit("confirm", {"requested_by": alert.requested_by, "devices": len(alert.tracks)}, alert.id, who)
        self._activate(alert, take, t0)
        return alert.out()

    def _activate(self, alert: Alert, take: dict, t0: float) -> None:
        self._take_over(alert, take)
        self._hold(alert)
        self.metrics.alerts.labels(alert.mode.value, alert.signal.value).inc()
        log.warning("alert %s: %s %s in zones %s -> %d devices on %d gateways (%s)", alert.id, alert.mode.value,
                    alert.signal.value, ",".join(alert.zones), len(alert.tracks),
                    len({t.gateway for t in alert.tracks.values()}), alert.by_label())
        self._begin_phase(alert, PHASE_ACTIVATE, alert.signal, t0=t0, ends_at=alert.expires_at, new_version=False)

    def _check_break_glass(self, req: AlertRequest, who: dict) -> None:
        why = None
        if not self.two_person.break_glass:
            why = "break glass is switched off in this hub's config ([two_person] break_glass = false)"
        elif not may_confirm(who):
            why = f"{who['name']} acts as {who['role']}; only a supervisor may break glass"
        elif not req.reason:
            why = "break glass needs --reason (it is recorded in the audit log)"
        if why is not None:
            self.metrics.alert_refusals.labels("break_glass").inc()
            self._audit("break_glass_refused", {"why": why, "request": req.model_dump(mode="json")}, None, who)
            raise NotAllowed(f"break glass refused: {why}")

    async def all_clear(self, alert_id: str, actor: object = None) -> AlertOut:
        alert = self._get(alert_id, adopt=True)
        alert.status = self._next(alert, Op.ALL_CLEAR)
        self._reclaim(alert)
        now = self.clock()
        self.metrics.alert_ops.labels("all_clear").inc()
        self._audit("all_clear", {"version": alert.version + 1}, alert.id, actor)
        alert.acted_by = actor_doc(actor)
        self._begin_phase(alert, PHASE_ALL_CLEAR, Signal.ALL_CLEAR, t0=self.mono(),
                          ends_at=now + self.cfg.all_clear_duration_s, new_version=True)
        return alert.out()

    async def stop(self, alert_id: str, actor: object = None) -> AlertOut:
        alert = self._get(alert_id, adopt=True)
        alert.status = self._next(alert, Op.STOP)
        self._reclaim(alert)
        self.metrics.alert_ops.labels("stop").inc()
        self._audit("stop", {}, alert.id, actor)
        alert.acted_by = actor_doc(actor)
        self._begin_phase(alert, PHASE_STOP, alert.phase_signal, t0=self.mono(), ends_at=self.clock(),
                          new_version=False)
        return alert.out()

    async def cancel(self, alert_id: str, actor: object = None) -> AlertOut:
        """Retract an alert sent in error (CAP Cancel); for a request nobody confirmed yet: withdraw it."""
        alert = self._get(alert_id, adopt=True)
        alert.status = self._next(alert, Op.CANCEL)
        if alert.status is State.WITHDRAWN:
            self._settle_unsent(alert, "withdrawn", actor)
            return alert.out()
        self._reclaim(alert)
        self.metrics.alert_ops.labels("cancel").inc()
        self._audit("cancel", {"version": alert.version + 1}, alert.id, actor)
        alert.acted_by = actor_doc(actor)
        self._begin_phase(alert, PHASE_STOP, alert.phase_signal, t0=self.mono(), ends_at=self.clock(),
                          new_version=True)
        return alert.out()

    def _expire_request(self, alert: Alert) -> None:
        alert.status = next_state(alert.status, Op.EXPIRE)
        log.warning("alert %s: nobody confirmed it within %.0f s; it expired unsent", alert.id,
                    self.two_person.confirm_window_s)
        self._settle_unsent(alert, "request_expired", None)

    def _settle_unsent(self, alert: Alert, kind: str, actor: object) -> None:
        alert.tracking, alert.zones_settled, alert.affects = False, True, []
        self._open.pop(alert.id, None)
        self.metrics.alert_ops.labels(kind).inc()
        self._audit(kind, {"sent": False}, alert.id, actor)
        self._save(alert)

    def get(self, alert_id: str, *, devices: bool = True) -> AlertDetail:
        alert = self._get(alert_id)
        if not devices:
            return AlertDetail.model_validate({**alert.out().model_dump(), "devices": []})
        out = alert.out(detail=True)
        assert isinstance(out, AlertDetail)
        return out

    def list(self, limit: int = 200) -> list[AlertOut]:
        """Newest first: every alert in memory, then finished ones from the store, ``limit`` in all."""
        seen = {a.id: a for a in self.alerts.values()}
        for doc in self.store.load_recent_alerts(limit):
            if doc["id"] not in seen:
                try:
                    seen[doc["id"]] = Alert.from_docs(doc, ())
                except (KeyError, TypeError, ValueError):
                    self.metrics.store_errors.inc()
        return [a.out() for a in sorted(seen.values(), key=lambda a: a.created_at, reverse=True)[:limit]]

    def pending(self) -> list[AlertOut]:
        return [a.out() for a in sorted(self._open.values(), key=lambda a: a.created_at)
                if a.status is State.PENDING_CONFIRMATION]

    def preview(self, alert_id: str) -> dict:
        """What a confirmer must see: the alert, its devices by kind, gateways, and what it would take over."""
        alert = self._get(alert_id)
        kinds = [t.kind for t in alert.tracks.values() if t.superseded_by is None]
        take, refuse = self._overlap(alert) if alert.status is State.PENDING_CONFIRMATION else ({}, {})
        return {"alert": alert.out(), "sirens": kinds.count("siren"), "speakers": kinds.count("speaker"),
                "devices": len(kinds), "gateways": len({t.gateway for t in alert.tracks.values()}),
                "affects": self._described(take), "conflicts": self._described(refuse)}

    def _next(self, alert: Alert, op: Op) -> State:
        """The lifecycle's verdict on ``op`` (hub/alerts/lifecycle.py); a refusal is a 409 with its sentence."""
        facts = Facts(sent=alert.sent, phase_open=alert.tracking)
        try:
            return next_state(alert.status, op, facts)
        except IllegalTransition as exc:
            self.metrics.alert_refusals.labels(op.value).inc()
            raise AlertStateError(f"alert {alert.id}: {exc}") from None

    def _get(self, alert_id: str, *, adopt: bool = False) -> Alert:
        """An alert from memory, else (finished and moved out) from the store; ``adopt`` brings it back into
        memory for an operation that changes it (e.g. the all-clear of a long-expired alert)."""
        alert = self.alerts.get(alert_id)
        if alert is None:
            alert = self.load(alert_id)
            if alert is None:
                raise AlertNotFound(f"no alert {alert_id!r}")
            if adopt:
                self.alerts[alert.id] = alert
        return alert

    @property
    def busy(self) -> bool:
        """An alert is open (waiting, sending or settling): not the time for housekeeping that stalls the loop."""
        return bool(self._open)

    def sizes(self) -> dict[str, int]:
        """What the engine holds in memory (the hub's ``dozor_hub_state_items``)."""
        return {"alerts": len(self.alerts), "alerts_open": len(self._open), "alert_command_ids": len(self._jti),
                "alert_devices_held": len(self.holder), "alert_tasks": len(self._tasks)}

    # ================================================================ clock
    def tick(self) -> None:
        """Expire requests and alerts, end all-clear windows, release finished alerts' sirens. Looks only at
        the open alerts (pending, or zone states not settled yet), never at the whole history."""
        now = self.clock()
        GC_PAUSE.expire()  # a phase task that never ended must not keep the garbage collector off
        for alert in list(self._open.values()):
            if alert.status is State.PENDING_CONFIRMATION:
                if now >= (alert.confirm_by or 0):
                    self._expire_request(alert)
                continue
            if alert.zones_settled:
                self._settled(alert)
                continue
            if alert.status == ACTIVE:
                if now < alert.expires_at:
                    continue
                alert.status = next_state(alert.status, Op.EXPIRE)
                log.warning("alert %s expired", alert.id)
                self._audit("expired", {}, alert.id)
            elif alert.status == ALL_CLEAR and now < alert.phase_ends_at:
                continue
            alert.zones_settled = True
            self._publish_zones(alert)
            self._save(alert)
            self._settled(alert)

    def _settled(self, alert: Alert) -> None:
        if not alert.tracking and alert.id not in self._trackers:
            self._open.pop(alert.id, None)
            if alert.finished:
                self._release(alert)

    async def run(self, interval_s: float = 0.25, prune_every_s: float = 10.0) -> None:
        last_prune = self.mono()
        while True:
            self.tick()
            if self.mono() - last_prune >= prune_every_s:
                last_prune = self.mono()
                self.prune()
            await asyncio.sleep(interval_s)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.signer.close()
