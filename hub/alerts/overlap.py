"""Overlap: which alert holds each siren (at most one), and the hand-over when a higher alert takes it.

The holder map is the single source of truth for who may command a device: dispatch sends to a device
only for its holder (``_send`` filters and counts anything else), so two alerts can never command one siren
at the same time, whatever the order of operator actions. The precedence rules are in policy.py.
"""

from __future__ import annotations

import logging

from hub.alerts.base import EngineBase
from hub.alerts.model import Alert
from hub.alerts.policy import Holding, describe, outranks
from hub.errors import AlertConflict

log = logging.getLogger("hub.alerts")

Key = tuple[str, str]


class OverlapMixin(EngineBase):
    holder: dict[Key, str]

    def _holding(self, alert: Alert) -> Holding:
        return Holding(alert.id, alert.mode, alert.signal, alert.phase)

    def _overlap(self, alert: Alert) -> tuple[dict[str, list[Key]], dict[str, list[Key]]]:
        """(taken over, refused): holders of ``alert``'s devices it outranks, and those it does not."""
        take: dict[str, list[Key]] = {}
        refuse: dict[str, list[Key]] = {}
        verdict: dict[str, dict[str, list[Key]]] = {}  # per holder, decided once (a city: 10,000 devices, 1 holder)
        for key, track in alert.tracks.items():
            if track.superseded_by is not None:
                continue
            held = self.holder.get(key)
            if held is None or held == alert.id or held not in self.alerts:
                continue
            side = verdict.get(held)
            if side is None:
                side = verdict[held] = take if outranks(alert.mode, alert.signal,
                                                        self._holding(self.alerts[held])) else refuse
            side.setdefault(held, []).append(key)
        return take, refuse

    def _described(self, ids: dict[str, list[Key]] | list[str]) -> list[str]:
        return [describe(self._holding(self.alerts[i]), self.alerts[i].zones) for i in ids if i in self.alerts]

    def _check_overlap(self, alert: Alert) -> dict[str, list[Key]]:
        """The takeovers ``alert`` would make; AlertConflict (409) naming the alerts when any holder outranks it."""
        take, refuse = self._overlap(alert)
        if refuse:
            self.metrics.alert_refusals.labels("overlap").inc()
            also = f"; it would also take sirens from {', '.join(self._described(take))}" if take else ""
            raise AlertConflict(
                f"refused: {len(sum(refuse.values(), []))} of its devices are held by "
                f"{', '.join(self._described(refuse))}, which has the same or higher precedence{also}. Stop or "
                "all-clear that alert first, or choose other zones (precedence: Actual over Exercise, then "
                "radiation > chemical > air-raid > test > silent-test; see docs/operations.md)")
        return take

    def _take_over(self, alert: Alert, take: dict[str, list[Key]]) -> None:
        """Hand the devices over: the old alert never sends to them again (not even a stop)."""
        for old_id, keys in take.items():
            old = self.alerts[old_id]
            for key in keys:
                track = old.tracks[key]
                track.superseded_by, track.updated_at = alert.id, self.clock()
                self.store.put_device(old.id, track.gateway, track.device, track)
            old.superseded_by.append(alert.id)
            alert.supersedes.append(old.id)
            old.recount()
            log.warning("alert %s takes %d devices over from alert %s", alert.id, len(keys), old.id)
            self._audit("superseded", {"by": alert.id, "devices": len(keys)}, old.id)
            self._save(old)

    def _hold(self, alert: Alert) -> None:
        self.holder_changes += 1
        for key, track in alert.tracks.items():
            if track.superseded_by is None:
                self.holder[key] = alert.id

    def _reclaim(self, alert: Alert) -> None:
        """Before an update (all-clear, stop, cancel) of an alert that may have let its sirens go (it had finished):
        take back the free ones; one another alert holds now is that alert's, and this update never touches it."""
        self.holder_changes += 1
        for key, track in alert.tracks.items():
            if track.superseded_by is not None:
                continue
            held = self.holder.get(key)
            if held is None:
                self.holder[key] = alert.id
            elif held != alert.id:
                track.superseded_by, track.updated_at = held, self.clock()
                self.store.put_device(alert.id, track.gateway, track.device, track)

    def _release(self, alert: Alert) -> None:
        self.holder_changes += 1
        for key in alert.tracks:
            if self.holder.get(key) == alert.id:
                del self.holder[key]

    def _may_send(self, alert: Alert, key: Key) -> bool:
        return self.holder.get(key) == alert.id
