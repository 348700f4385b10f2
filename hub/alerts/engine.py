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

The package's seams: ``lifecycle`` (pure state machine), ``model`` (the record), ``dispatch`` (signing,
sending, retries, escalation), ``tracking`` (acks), ``zonestate`` (rendering and publishing zone states),
``persistence`` (store, restart). This module holds the operator actions and the clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from contract.models import CAPABILITIES, Signal, ZoneState
from hub.alerts.base import AlertHook, Publish, PublishNowait
from hub.alerts.dispatch import DispatchMixin
from hub.alerts.lifecycle import Facts, IllegalTransition, Op, State, next_state
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
from hub.alerts.persistence import PersistenceMixin
from hub.alerts.tracking import TrackingMixin
from hub.alerts.zonestate import ZoneStateMixin
from hub.config import HubSettings
from hub.errors import AlertNotFound, AlertStateError, NoTargets
from hub.identity.roles import Actor
from hub.keys import HubKeys
from hub.metrics import HubMetrics
from hub.models import AlertDetail, AlertOut, AlertRequest
from hub.registry import Registry
from hub.store import Store
from hub.zones import Zones

log = logging.getLogger("hub.alerts")


class AlertEngine(DispatchMixin, TrackingMixin, ZoneStateMixin, PersistenceMixin):
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
    async def start(self, req: AlertRequest, actor: Actor | None = None) -> AlertOut:
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
                      message=req.message, updated_at=now, requested_by=_who(actor), acted_by=_who(actor))
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

    async def all_clear(self, alert_id: str, actor: Actor | None = None) -> AlertOut:
        alert = self._get(alert_id)
        alert.status = self._next(alert, Op.ALL_CLEAR)
        alert.acted_by = _who(actor) or alert.acted_by
        now = self.clock()
        self.metrics.alert_ops.labels("all_clear").inc()
        self.store.audit("all_clear", {"version": alert.version + 1}, alert.id)
        self._begin_phase(alert, PHASE_ALL_CLEAR, Signal.ALL_CLEAR, t0=self.mono(),
                          ends_at=now + self.cfg.all_clear_duration_s, new_version=True)
        return alert.out()

    async def stop(self, alert_id: str, actor: Actor | None = None) -> AlertOut:
        alert = self._get(alert_id)
        alert.status = self._next(alert, Op.STOP)
        alert.acted_by = _who(actor) or alert.acted_by
        self.metrics.alert_ops.labels("stop").inc()
        self.store.audit("stop", {}, alert.id)
        self._begin_phase(alert, PHASE_STOP, alert.phase_signal, t0=self.mono(), ends_at=self.clock(),
                          new_version=False)
        return alert.out()

    async def cancel(self, alert_id: str, actor: Actor | None = None) -> AlertOut:
        alert = self._get(alert_id)
        alert.status = self._next(alert, Op.CANCEL)
        alert.acted_by = _who(actor) or alert.acted_by
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

    def _next(self, alert: Alert, op: Op) -> State:
        """The lifecycle's verdict on ``op`` (hub/alerts/lifecycle.py); a refusal is a 409 with its sentence."""
        facts = Facts(sent=alert.phase_seq > 0, phase_open=alert.tracking)
        try:
            return next_state(alert.status, op, facts)
        except IllegalTransition as exc:
            self.metrics.alert_refusals.labels(op.value).inc()
            raise AlertStateError(f"alert {alert.id}: {exc}") from None

    def _get(self, alert_id: str) -> Alert:
        try:
            return self.alerts[alert_id]
        except KeyError:
            raise AlertNotFound(f"no alert {alert_id!r}") from None

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
                alert.status = next_state(alert.status, Op.EXPIRE)
                log.warning("alert %s expired", alert.id)
                self.store.audit("expired", {}, alert.id)
            elif alert.status == ALL_CLEAR and now < alert.phase_ends_at:
                continue
            alert.zones_settled = True
            self._publish_zones(alert)
            self._save(alert)

    async def run(self, interval_s: float = 0.25) -> None:
        last_prune = self.mono()
        while True:
            self.tick()
            if self.mono() - last_prune > 60:
                last_prune = self.mono()
                self.prune()
            await asyncio.sleep(interval_s)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _who(actor: Actor | None) -> dict | None:
    return actor.as_dict() if actor is not None else None
