"""Zone states: what each zone shows (idle, active, all-clear, cancelled) after an alert changes, published
retained per zone and handed to the hooks (resident notifications) alongside the siren commands."""

from __future__ import annotations

import asyncio
import logging

from contract.models import Mode, Signal, ZoneState, ZoneStatus
from hub.alerts.base import AlertHook, EngineBase
from hub.alerts.model import ACTIVE, ALL_CLEAR, CANCELLED, Alert
from hub.models import AlertOut

log = logging.getLogger("hub.alerts")

HEADLINES = {
    Signal.AIR_RAID: {"uk": "Повітряна тривога", "en": "Air raid alert"},
    Signal.ALL_CLEAR: {"uk": "Відбій повітряної тривоги", "en": "All clear"},
    Signal.CHEMICAL: {"uk": "Хімічна небезпека", "en": "Chemical hazard"},
    Signal.RADIATION: {"uk": "Радіаційна небезпека", "en": "Radiation hazard"},
    Signal.TEST: {"uk": "Перевірка системи оповіщення", "en": "Warning system test"},
    Signal.SILENT_TEST: {"uk": "Тиха перевірка", "en": "Silent test"},
}
EXERCISE_PREFIX = {"uk": "НАВЧАННЯ: ", "en": "EXERCISE: "}


class ZoneStateMixin(EngineBase):
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
        if not await self.publish(self.cfg.topics.zone_state(state.zone), state.to_bytes(), 1, True):
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
