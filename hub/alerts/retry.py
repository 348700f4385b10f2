"""Retries and escalation: what a phase's gateways have not confirmed by the confirm deadline is re-sent (fresh
commands, through ``DispatchMixin._send``) up to ``max_retries`` times, then given up and escalated; a stop is
never given up. Re-sends when a gateway comes back online or the MQTT connection is re-established. (Split
from dispatch.py, which keeps the first send of a phase.)
"""

from __future__ import annotations

import asyncio
import logging

from hub.alerts.base import EngineBase
from hub.alerts.model import (
    ACCEPTED,
    FAILED,
    PENDING,
    PHASE_STOP,
    UNREACHABLE,
    Alert,
    Track,
    reason_label,
)
from hub.registry import OFFLINE, ONLINE

log = logging.getLogger("hub.alerts")

MAX_ESCALATIONS = 1000
STOP_RESEND_MAX_S = 30.0  # a stop is re-sent until confirmed; after max_retries the interval doubles up to this


class RetryMixin(EngineBase):
    async def _track(self, alert: Alert, seq: int) -> None:
        """Retry what is not confirmed by the deadline; after max_retries give up and escalate."""
        while alert.phase_seq == seq and alert.outstanding:
            deadline = self.cfg.confirm_deadline_s
            stop = alert.phase == PHASE_STOP
            if stop and alert.attempt >= self.cfg.max_retries:  # a stop is never given up: re-send, backing off
                deadline = min(STOP_RESEND_MAX_S, deadline * 2 ** (alert.attempt - self.cfg.max_retries + 1))
            wait = alert.last_sent_mono + deadline - self.mono()
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
            if stop and alert.attempt >= self.cfg.max_retries:
                self._stop_not_confirmed(alert, todo)
                alert.attempt += 1
                self._send(alert, todo, retry=True)
                continue
            if alert.attempt < self.cfg.max_retries and not ended:
                alert.attempt += 1
                log.warning("alert %s: retry %d/%d for %d devices not confirmed after %.1fs", alert.id,
                            alert.attempt, self.cfg.max_retries, len(todo), self.cfg.confirm_deadline_s)
                self._audit("retry", {"attempt": alert.attempt, "devices": len(todo)}, alert.id)
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

    def _stop_not_confirmed(self, alert: Alert, todo: list[Track]) -> None:
        """Stop targets still not confirmed silent after max_retries: escalate each once, keep re-sending
        (with a fresh command each time) until an authenticated ack says the device is silent."""
        for t in todo:
            if t.state in (PENDING, UNREACHABLE) and t.reason not in ("no_ack", "gateway_offline"):
                t.state = UNREACHABLE
                t.reason = "gateway_offline" if self.registry.state_of(t.gateway) == OFFLINE else "no_ack"
                t.updated_at = self.clock()
                self._escalate(alert, t, UNREACHABLE, f"stop not confirmed ({t.reason}); re-sending until it is")
                self.store.put_device(alert.id, t.gateway, t.device, t)

    def _escalate(self, alert: Alert, track: Track, outcome: str, reason: str) -> None:
        log.error("alert %s: %s/%s %s (%s) [%s %s]", alert.id, track.gateway, track.device, outcome, reason,
                  alert.mode.value, alert.phase)
        self.metrics.escalations.labels(outcome, reason_label(track.reason or reason)).inc()
        if len(alert.escalations) < MAX_ESCALATIONS:
            alert.escalations.append({"gateway": track.gateway, "device": track.device, "outcome": outcome,
                                      "reason": reason, "phase": alert.phase, "ts": self.clock()})
        self._audit("escalation", {"gateway": track.gateway, "device": track.device, "outcome": outcome,
                                        "reason": reason}, alert.id)
        self._save(alert)

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
