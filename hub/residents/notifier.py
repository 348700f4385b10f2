"""ResidentNotifier: the hook the alert engine calls, in parallel with the siren commands.

``on_zone_state`` updates the zone state (the SSE page sees it at once), records the message for CAP, and
starts one task per channel. It returns without waiting for any channel, so a slow or failing channel can
delay neither the sirens nor the other channels. ``drain()`` waits for the channel tasks (tests, shutdown).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from contract.models import Mode, ZoneState, ZoneStatus
from hub.residents.adapter import alert_times, from_hub_alert
from hub.residents.channels.base import Channel
from hub.residents.models import ResidentAlert
from hub.residents.state import AlertArchive, ZoneStateStore

log = logging.getLogger(__name__)
UNSENT = frozenset({"pending_confirmation", "withdrawn"})  # hub alert lifecycle states before anything is sent


class ResidentNotifier:
    def __init__(self, channels: Sequence[Channel] = (), *, store: ZoneStateStore | None = None,
                 archive: AlertArchive | None = None) -> None:
        self.channels = list(channels)
        self.store = store if store is not None else ZoneStateStore()
        self.archive = archive if archive is not None else AlertArchive()
        self.counters: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_alert(self, alert: Any, states: Sequence[ZoneState], *, notify: bool = True) -> None:
        """The hook to register with the hub's alert engine: ``async fn(AlertOut, list[ZoneState])``.
        An alert still waiting for a second person (or withdrawn before it) was never sent: residents see
        nothing of it, not on the page, not in any channel. ``notify=False`` (a follower hub mirroring the
        leader's zone states) updates the page, live stream and CAP archive but starts no channel."""
        status = alert.get("status") if isinstance(alert, dict) else getattr(alert, "status", None)
        if str(getattr(status, "value", status)) in UNSENT:
            self.counters["unsent_ignored"] += 1
            return
        ra = from_hub_alert(alert, states)
        self.store.set_times(ra.id, alert_times(alert))
        await self.on_zone_state(ra, states, notify=notify)
        if ra.mode is Mode.ACTUAL and ra.status is not ZoneStatus.ACTIVE:
            self.store.retire(ra.id, ra.zones)

    async def on_zone_state(self, alert: ResidentAlert, states: Sequence[ZoneState], *, notify: bool = True) -> None:
        """An alert started, was updated (incl. all-clear), was cancelled, or ended (status ``idle``).

        Only states that belong to this alert carry its texts; a zone that another alert still holds keeps
        its own. A return to idle updates the live views but sends no notification and no CAP message.
        """
        self.counters["messages"] += 1
        if alert.status is ZoneStatus.ACTIVE:  # the engine hook knows better (created_at); others: first sent
            self.store.set_times(alert.id, (alert.sent.timestamp(), None), keep=True)
        fresh: list[ZoneState] = []
        for st in states:
            own = st.alert == alert.id
            if not self.store.apply(st, alert if own else None):
                continue  # not newer than what the zone already shows
            if own and st.status is not ZoneStatus.IDLE:
                fresh.append(st)
            elif not own and st.status is not ZoneStatus.IDLE:
                self.counters["foreign_states"] += 1  # another alert holds this zone: shown, not re-sent
        if alert.status is not ZoneStatus.IDLE:
            self.archive.record(alert)
        if not fresh or not notify:
            self.counters["no_notification"] += 1
            return
        for channel in self.channels:
            task = asyncio.create_task(self._run(channel, alert, fresh), name=f"residents:{channel.name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, channel: Channel, alert: ResidentAlert, states: Sequence[ZoneState]) -> None:
        try:
            await channel.deliver(alert, states)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - supervisor: a channel bug is logged and counted, never spread
            self.counters[f"channel_crash:{channel.name}"] += 1
            channel.stats.failed += 1
            channel.stats.consecutive_failures += 1
            channel.stats.last_error = f"internal: {type(exc).__name__}: {exc}"[:300]
            log.exception("resident channel %s crashed", channel.name)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

    def channel_report(self) -> list[dict[str, object]]:
        return [{**ch.describe(), **ch.stats.as_dict()} for ch in self.channels]

    async def aclose(self) -> None:
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*tuple(self._tasks), return_exceptions=True)
        for ch in self.channels:
            await ch.aclose()
