"""What every part of the alert engine shares: its wiring (config, keys, zones, registry, store, MQTT
publish, metrics, clocks) and its in-memory indexes. ``AlertEngine`` (engine.py) fills it in; the mixins
(dispatch, tracking, zone states, persistence) each use only what they need of it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from contract.models import ZoneState
from hub.alerts.model import Alert, CmdRef
from hub.config import HubSettings
from hub.keys import HubKeys
from hub.metrics import HubMetrics
from hub.models import AlertOut
from hub.registry import Registry
from hub.store import Store
from hub.zones import Zones

log = logging.getLogger("hub.alerts")

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
    metrics: HubMetrics
    clock: Callable[[], float]
    mono: Callable[[], float]
    alerts: dict[str, Alert]
    hooks: list[AlertHook]
    zone_states: dict[str, ZoneState]
    _jti: dict[str, CmdRef]
    _token: dict[str, str]
    _trackers: dict[str, asyncio.Task]
    _tasks: set[asyncio.Task]

    def _spawn(self, coro: Awaitable) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _save(self, alert: Alert) -> None:
        alert.updated_at = self.clock()
        self.store.put_alert(alert.id, alert)  # serialised at the next flush: many changes, one write

    def _flush(self, *, devices: bool = True) -> None:
        try:
            self.store.flush(devices=devices)
        except Exception:  # noqa: BLE001 - StoreError: keep alerting; writes are retried by the next flush
            self.metrics.store_errors.inc()
            log.exception("hub state write failed")

    # implemented by the mixins
    def _publish_zones(self, alert: Alert) -> None:
        raise NotImplementedError

    def _escalate(self, alert: Alert, track, outcome: str, reason: str) -> None:
        raise NotImplementedError
