"""Tracking: acks from gateways applied to the per-device tracks of the phase they belong to. Synchronous,
O(devices in the ack), never raises (a bad or stale ack is counted and dropped)."""

from __future__ import annotations

from contract.errors import RejectReason
from contract.models import Ack, AckStage
from hub.alerts.base import EngineBase
from hub.alerts.model import (
    ACCEPTED,
    CONFIRMED_STATES,
    DONE,
    FAILED,
    FAILED_STATES,
    PENDING,
    PHASE_STOP,
    UNREACHABLE,
    Alert,
    Track,
)

# Refusals about *when* a command was issued, not what it asks: a freshly issued command gets through.
RETRYABLE_REJECTIONS = frozenset({RejectReason.ISSUED_BEFORE_RESTART.value})


class TrackingMixin(EngineBase):
    # ================================================================ acks (sync, never raise)
    def on_ack(self, ack: Ack) -> None:
        ref = self._jti.get(ack.cmd)
        if ref is None and ack.token_sha256:
            ref = self._jti.get(self._token.get(ack.token_sha256, ""))
        if ref is None:
            self.metrics.acks_ignored.labels("unknown_cmd").inc()
            return
        if ref.gateway != ack.gateway:
            self.metrics.acks_ignored.labels("wrong_gateway").inc()
            return
        if ack.stage is AckStage.REJECTED and self._jti.get(self._token.get(ack.token_sha256 or "", "")) is not ref:
            # The gateway names the command from a token it could not verify: believe the refusal only if the
            # refused token is the very one the hub signed under that id (a forged token reusing a real jti
            # must not stop the tracking of sirens that are sounding).
            self.metrics.acks_ignored.labels("rejection_of_other_token").inc()
            return
        alert = self.alerts.get(ref.alert)
        if alert is not None and ref.phase_seq != alert.phase_seq and ref.act == "stop" \
                and alert.phase == PHASE_STOP and ack.stage is AckStage.DONE:
            pass  # a late done of an earlier stop: the device is silent, which moves the current stop forward
        elif alert is None or ref.phase_seq != alert.phase_seq:
            self.metrics.acks_ignored.labels("stale_phase").inc()
            return
        self.metrics.acks.labels(ack.stage.value).inc()
        devices = ack.devices or (ref.targets if ack.stage in (AckStage.ACCEPTED, AckStage.REJECTED,
                                                                 AckStage.FAILED) else ())
        reason = ack.reason or ack.detail
        for dev in devices:
            track = alert.tracks.get((ack.gateway, dev))
            if track is None:
                self.metrics.acks_ignored.labels("unknown_device").inc()
                continue
            self._apply(alert, track, ack.stage, reason)

    def _apply(self, alert: Alert, track: Track, stage: AckStage, reason: str | None) -> None:
        was_outstanding = track.outstanding
        now_ms = round((self.mono() - alert.phase_t0) * 1000, 1)
        state = track.state
        if stage is AckStage.ACCEPTED:
            if state in (PENDING, UNREACHABLE, FAILED):  # FAILED: a retry of a failed device was accepted
                track.state, track.reason = ACCEPTED, None
            if track.accepted_ms is None:
                track.accepted_ms = now_ms
        elif stage in (AckStage.SOUNDING, AckStage.PLAYING):
            if alert.phase == PHASE_STOP or state == DONE:
                return
            track.state, track.reason = stage.value, None
            self._confirm(track, now_ms)
        elif stage is AckStage.DONE:
            if state in FAILED_STATES and alert.phase != PHASE_STOP:  # a failed stop that now succeeded: silent
                return
            track.state, track.reason = DONE, None
            self._confirm(track, now_ms)
        else:  # rejected / failed
            if stage is AckStage.REJECTED and state in CONFIRMED_STATES:
                return  # a duplicate refused after the device already confirmed: nothing changed
            # A refused or failed stop is re-sent (fresh command) like a failed device, never given up. So is a
            # command refused only for when it was issued (the gateway restarted uncleanly after its iat second):
            # a fresh command, issued after the restart, is accepted.
            retry = alert.phase == PHASE_STOP or (stage is AckStage.REJECTED and reason in RETRYABLE_REJECTIONS)
            outcome = FAILED if retry else stage.value
            track.state, track.reason = outcome, (reason or "unspecified")[:64]
            self._escalate(alert, track, stage.value, track.reason)
        track.updated_at = self.clock()
        self.store.put_device(alert.id, track.gateway, track.device, track)
        if was_outstanding and not track.outstanding:
            alert.outstanding -= 1
            if alert.outstanding <= 0:
                alert.settled.set()

    def _confirm(self, track: Track, now_ms: float) -> None:
        if track.confirm_ms is None:
            track.confirm_ms = now_ms
            self.metrics.confirm.observe(now_ms / 1000)
