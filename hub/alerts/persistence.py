"""Persistence: alerts, device tracks and commands to the hub store, and back after a restart (tracking of
unfinished phases resumes); command ids of long-finished alerts are forgotten."""

from __future__ import annotations

import logging

from contract.models import ZoneState
from hub.alerts.base import EngineBase
from hub.alerts.model import Alert, CmdRef
from hub.errors import StoreError

log = logging.getLogger("hub.alerts")
RETENTION_EVERY_S = 3600.0  # how often the store is swept for alerts past alert_retention_days


class PersistenceMixin(EngineBase):
    _retention_at = float("-inf")  # the engine clock at the last store sweep

    def prune(self, keep_s: float | None = None) -> int:
        """Move finished alerts out of memory ``keep_s`` (default ``finished_in_memory_s``) after their last
        change: flushed to the store first, then forgotten with their command ids (a late ack for them is
        counted as stale). Store rows older than ``alert_retention_days`` are deleted (swept at most once per
        ``RETENTION_EVERY_S``). Returns how many alerts left memory."""
        now = self.clock()
        keep = self.cfg.finished_in_memory_s if keep_s is None else keep_s
        gone = {a.id for a in self.alerts.values() if a.finished and now - a.updated_at >= keep}
        if gone:
            self._flush()  # their last state is durable before memory lets go of it
            if self.store.dirty:
                return 0  # the store is failing: keep them in memory, try again next time
            for alert_id in gone:
                alert = self.alerts.pop(alert_id)
                task = self._trackers.pop(alert_id, None)
                if task is not None:
                    task.cancel()
                self._release(alert)
                self._open.pop(alert_id, None)
            stale = [jti for jti, ref in self._jti.items() if ref.alert in gone]
            for jti in stale:
                del self._jti[jti]
            self._token = {sha: jti for sha, jti in self._token.items() if jti in self._jti}
        if now - self._retention_at >= RETENTION_EVERY_S:
            self._retention_at = now
            try:
                self.store.delete_alerts_before(now - self.cfg.alert_retention_days * 86400, keep=set(self.alerts))
            except StoreError:
                self.metrics.store_errors.inc()
                log.exception("cannot delete alerts past their retention")
        return len(gone)

    def load(self, alert_id: str) -> Alert | None:
        """A finished alert that has left memory, read from the store (None when there is none)."""
        doc = self.store.load_alert(alert_id)
        if doc is None:
            return None
        return Alert.from_docs(doc, self.store.load_devices(alert_id))

    def resume(self) -> int:
        """Load the alerts that are not finished from SQLite, resume tracking those whose phase was still
        being tracked, and rebuild which alert holds which device."""
        for zone, doc in self.store.load_zone_states().items():
            self.zone_states[zone] = ZoneState.model_validate(doc)
        resumed = 0
        now, mono = self.clock(), self.mono()
        for doc in self.store.load_alerts(open_only=True):
            try:
                alert = Alert.from_docs(doc, self.store.load_devices(doc["id"]))
            except (KeyError, TypeError, ValueError) as exc:  # a damaged row must not keep the hub down
                self.metrics.store_errors.inc()
                log.error("skipping unreadable alert %s in the hub state: %r", doc.get("id"), exc)
                continue
            self.alerts[alert.id] = alert
            if not alert.finished:
                self._open[alert.id] = alert
                if alert.sent:
                    self._hold(alert)  # in creation order: a newer holder overwrites the older
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
                self._trackers[alert.id] = self._spawn(self._track(alert, alert.phase_seq), tracker_of=alert)
        return resumed
