"""Persistence: alerts, device tracks and commands to the hub store, and back after a restart (tracking of
unfinished phases resumes); command ids of long-finished alerts are forgotten."""

from __future__ import annotations

import logging

from contract.models import ZoneState
from hub.alerts.base import EngineBase
from hub.alerts.model import ACTIVE, ALL_CLEAR, Alert, CmdRef

log = logging.getLogger("hub.alerts")


class PersistenceMixin(EngineBase):
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
                self._jti[cmd["jti"]] = CmdRef(alert.id, cmd["gateway"], alert.phase_seq, tuple(cmd["targets"]),
                                               cmd.get("act", ""))
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
