"""What every part of the alert engine shares: its wiring (config, keys, zones, registry, store, MQTT
publish, metrics, clocks) and its in-memory indexes. ``AlertEngine`` (engine.py) fills it in; the mixins
(dispatch, tracking, zone states, persistence) each use only what they need of it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from contract.models import ZoneState
from hub.alerts.actors import actor_doc
from hub.alerts.model import Alert, CmdRef
from hub.config import HubSettings
from hub.keys import HubKeys
from hub.metrics import HubMetrics
from hub.models import AlertOut
from hub.registry import Registry
from hub.sendfirst import SendFirst
from hub.signproc import SignerProcess
from hub.store import Store
from hub.zones import Zones
from runtime.ratelog import RateLimitedLog

log = logging.getLogger("hub.alerts")
# The longest a dispatch in progress holds back the periodic flush of device rows (a stuck phase task must not
# hold them for ever). 2 s was shorter than a 2,000-gateway dispatch on a loaded 2-core machine: the device rows
# then went to PostgreSQL between the steps and each step's commit waited behind 2,000 of them (bench.city,
# load 7-10: 0.9-2.3 s of a dispatch's step commits spent so, against 0.2 s where no device rows resumed).
DEFER_DEVICES_S = 10.0
DEVICE_ROWS_PER_FLUSH = 2000  # per periodic flush (0.2 s): a city's 10,000 rows go over five ticks, acks in between

AlertHook = Callable[[AlertOut, list[ZoneState]], Awaitable[None]]
Publish = Callable[[str, bytes, int, bool], Awaitable[bool]]
PublishNowait = Callable[[str, bytes, int, bool], bool]


class EngineBase:
    cfg: HubSettings
    keys: HubKeys
    zones: Zones
    registry: Registry
    store: Store
    publish: Publish
    publish_nowait: PublishNowait | None
    is_connected: Callable[[], bool]
    flush_writes: Callable[[], None]
    send_first: SendFirst | None  # hub/sendfirst.py: control messages wait while a phase's commands go out
    metrics: HubMetrics
    signer: SignerProcess
    clock: Callable[[], float]
    mono: Callable[[], float]
    alerts: dict[str, Alert]
    hooks: list[AlertHook]
    zone_states: dict[str, ZoneState]
    _jti: dict[str, CmdRef]
    _token: dict[str, str]
    _trackers: dict[str, asyncio.Task]
    _tasks: set[asyncio.Task]
    _task_log: RateLimitedLog  # a failing engine task: one line per cause every 30 s
    holder: dict[tuple[str, str], str]
    holder_changes = 0  # bumped by every change of ``holder`` (overlap.py): a signed batch re-checks only then
    _open: dict[str, Alert]  # pending, or zone states not settled yet: all that tick() looks at
    audit_sink: Callable[[dict, str, str | None, dict], None] | None  # hub.audit.append(actor, action, subject, ...)

    def _audit(self, kind: str, detail: dict, alert_id: str | None, actor: object = None) -> None:
        """One audit record of an alert action or state change, always with its actor (the hub's own for the
        clock and for retries)."""
        doc = actor_doc(actor)
        self.store.audit(kind, {**detail, "actor": doc}, alert_id)
        if self.audit_sink is not None:
            try:
                self.audit_sink(doc, kind, alert_id, detail)
            except Exception:  # noqa: BLE001 - the local record above is kept; the chain failure is loud
                self.metrics.store_errors.inc()
                log.exception("audit chain append failed for %s %s", kind, alert_id)

    def _may_send(self, alert: Alert, key: tuple[str, str]) -> bool:
        raise NotImplementedError

    def _hold(self, alert: Alert) -> None:
        raise NotImplementedError

    def _release(self, alert: Alert) -> None:
        raise NotImplementedError

    def _reclaim(self, alert: Alert) -> None:
        raise NotImplementedError

    def _spawn(self, coro: Awaitable, *, tracker_of: Alert | None = None) -> asyncio.Task:
        """A task of the engine (sends, zone states, hooks, an alert's tracker). One that fails is counted
        (``dozor_hub_task_failures_total{task="alert"}``) and logged once per cause; a failed tracker of
        ``tracker_of`` is started again (``_track`` of the current phase) after ``confirm_deadline_s``, so the
        alert's retries and escalation go on instead of stopping silently."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: self._task_done(t, tracker_of))
        return task

    def _task_done(self, task: asyncio.Task, alert: Alert | None) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.metrics.task_failures.labels("alert").inc()
        again = alert is not None and alert.tracking and self._trackers.get(alert.id) is task
        self._task_log.error(f"alert-task:{type(exc).__name__}", "alert engine task failed (%r)%s", exc,
                             f"; tracking of alert {alert.id} restarts" if again else "")
        if again:
            assert alert is not None
            self._trackers[alert.id] = self._spawn(self._track_later(alert, alert.phase_seq), tracker_of=alert)
        elif alert is not None and self._trackers.get(alert.id) is task:
            del self._trackers[alert.id]  # a dead tracker must not keep the alert open

    async def _track_later(self, alert: Alert, seq: int) -> None:
        await asyncio.sleep(self.cfg.confirm_deadline_s)
        await self._track(alert, seq)

    async def _track(self, alert: Alert, seq: int) -> None:  # retry.py
        raise NotImplementedError

    def _send(self, alert: Alert, tracks: list, *, retry: bool) -> int:  # dispatch.py
        raise NotImplementedError

    def _save(self, alert: Alert) -> None:
        alert.updated_at = self.clock()
        self.store.put_alert(alert.id, alert)  # serialised at the next flush: many changes, one write

    def flush_queued(self) -> None:
        """The periodic flush (hub/app.py). While a phase's commands are still going out (at most
        ``DEFER_DEVICES_S`` after its request) the per-device rows wait for the next tick: 10,000 of them are
        hundreds of milliseconds of the loop, and nothing needs them sooner (the alert row names every target
        and the command rows record what was sent: a restarted hub rebuilds the device tracks from those). At
        most ``DEVICE_ROWS_PER_FLUSH`` device rows go per tick, so acks are handled between the ticks."""
        self._flush(devices=not self._dispatching(), max_devices=DEVICE_ROWS_PER_FLUSH)

    async def flush_queued_off_loop(self) -> None:
        """``flush_queued`` with its transaction in a worker thread on PostgreSQL (``Store.flush_off_loop``):
        2,000 device rows are tens of milliseconds of another process, which the loop spends on acks instead."""
        try:
            await self.store.flush_off_loop(devices=not self._dispatching(), max_devices=DEVICE_ROWS_PER_FLUSH)
        except Exception:  # noqa: BLE001 - StoreError: keep alerting; writes are retried by the next flush
            self.metrics.store_errors.inc()
            log.exception("hub state write failed")

    def _dispatching(self) -> bool:
        now = self.mono()
        return any(a.tracking and a.dispatch_ms is None and now - a.phase_t0 < DEFER_DEVICES_S
                   for a in self._open.values())

    def _flush(self, *, devices: bool = True, max_devices: int | None = None) -> None:
        try:
            self.store.flush(devices=devices, max_devices=max_devices)
        except Exception:  # noqa: BLE001 - StoreError: keep alerting; writes are retried by the next flush
            self.metrics.store_errors.inc()
            log.exception("hub state write failed")

    # implemented by the mixins
    def _publish_zones(self, alert: Alert) -> None:
        raise NotImplementedError

    def _escalate(self, alert: Alert, track, outcome: str, reason: str) -> None:
        raise NotImplementedError
