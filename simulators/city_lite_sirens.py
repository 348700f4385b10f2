"""The command side of a lite simulated gateway (``dozor sim city --lite``): verify a signed command with the same
contract code a real gateway uses, and drive per-siren state machines held in memory (no pty, no Modbus).

Checks, in the real gateway's order (docs/protocol.md "Commands"): ``contract.command.verify_command`` (malformed,
algorithm, key, signature, audience, lifetime, not-yet-valid, expired; stops exempt from age), then
``issued_before_restart`` and ``before_floor`` (non-stops), then replay (jti seen before; the seen set lives in
memory, so a restarted lite gateway refuses every non-stop command issued before its start, as a real gateway
does after an unclean stop), then every target (``unknown_target``). Every refusal: one ``rejected`` ack with the
reason, counters ``cmd_rejected`` and ``cmd_rejected_<reason>``, and nothing driven.

Acks, as the real gateway sends them: ``accepted`` (the targets), then per siren ``sounding`` once its spin-up
has passed, and ``done`` when the activation ends (its ``duration_s``, a stop of its alert, or a newer activation
that supersedes it). Devices that reach a stage in the same loop turn share one ack. A retried command (new jti)
for a siren already sounding for the same alert and signal is acked ``accepted`` and ``sounding`` again without
restarting it. Stops and all-clears are scoped to their alert. What this does NOT exercise: the Modbus RTU
framing, the serial link and the siren controller's registers (``simulators.city`` runs those, per gateway).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract.command import MAX_LIFETIME_S, CommandClaims, token_sha256, verify_command
from contract.errors import CommandRejected, RejectReason
from contract.models import Ack, AckStage, Action, DeviceState, DeviceStatus, Mode, Signal

log = logging.getLogger("dozor.sim.city_lite")
PURGE_EVERY_S = 60.0


@dataclass(eq=False)
class SirenRun:
    """One siren's activation; several commands of the same alert (retries) may listen to it."""

    siren: str
    alert: str | None
    signal: Signal
    listeners: list[CommandClaims]
    reached: bool = False
    finished: bool = False
    timers: list[asyncio.TimerHandle] = field(default_factory=list)


class LiteSirens:
    """One gateway's sirens and command checks. ``handle(payload)`` never raises; acks go to ``emit``."""

    def __init__(self, gateway_id: str, sirens: list[str], *, keys: Mapping[str, Ed25519PublicKey],
                 emit: Callable[[Ack], None], counters: Counter, spinup_s: float = 0.0, max_activation_s: int = 900,
                 floor: int = 0, not_before: float | None = None, clock: Callable[[], float] = time.time) -> None:
        self.gateway_id = gateway_id
        self.sirens = list(sirens)
        self.keys = dict(keys)
        self.emit = emit
        self.counters = counters
        self.spinup_s = spinup_s
        self.max_activation_s = max_activation_s
        self.floor = floor
        self.not_before = not_before
        self.clock = clock
        self.runs: dict[str, SirenRun] = {}
        self.seen: dict[str, float] = {}  # jti -> keep until (the replay store, in memory)
        self._purged = 0.0
        self._batches: dict[tuple[str, AckStage, str | None, str | None], tuple[CommandClaims, list[str]]] = {}
        self._flush_queued = False

    # ------------------------------------------------------------ entry point
    def handle(self, payload: bytes) -> CommandClaims | None:
        self.counters["cmd_received"] += 1
        try:
            claims = self._verify(payload)
        except CommandRejected as rej:
            self._reject(payload, rej)
            return None
        except Exception as exc:  # a bug must not let a command through: refuse it, count it
            self.counters["cmd_handler_error"] += 1
            log.exception("[%s] command verification crashed", self.gateway_id)
            self._reject(payload, CommandRejected(RejectReason.MALFORMED, f"internal: {type(exc).__name__}"))
            return None
        self.counters["cmd_accepted"] += 1
        self._start(claims)
        return claims

    def _verify(self, payload: bytes) -> CommandClaims:
        now = self.clock()
        claims = verify_command(payload, keys=self.keys, audience=self.gateway_id, now=now, stop_never_expires=True)
        stop = claims.act is Action.STOP
        if not stop and self.not_before is not None and claims.iat < self.not_before:
            raise CommandRejected(RejectReason.ISSUED_BEFORE_RESTART, "the gateway restarted since; the hub re-sends "
                                  "a fresh command", jti=claims.jti, alert=claims.alert)
        if not stop and claims.iat < self.floor:
            raise CommandRejected(RejectReason.BEFORE_FLOOR, "issued before this gateway's state dir existed",
                                  jti=claims.jti, alert=claims.alert)
        if now - self._purged > PURGE_EVERY_S:
            self.seen = {j: t for j, t in self.seen.items() if t > now}
            self._purged = now
        if claims.jti in self.seen:
            raise CommandRejected(RejectReason.REPLAYED, jti=claims.jti, alert=claims.alert)
        self.seen[claims.jti] = max(claims.exp, now + MAX_LIFETIME_S) if stop else claims.exp
        for target in claims.targets:
            if target not in self.sirens:
                raise CommandRejected(RejectReason.UNKNOWN_TARGET, target, jti=claims.jti, alert=claims.alert)
        return claims

    def _reject(self, payload: bytes, rej: CommandRejected) -> None:
        self.counters["cmd_rejected"] += 1
        self.counters[f"cmd_rejected_{rej.reason.value}"] += 1
        sha = token_sha256(payload)
        jti = rej.jti if isinstance(rej.jti, str) and 1 <= len(rej.jti) <= 128 else None
        alert = rej.alert if isinstance(rej.alert, str) and len(rej.alert) <= 128 else None
        self._send(Ack(gateway=self.gateway_id, cmd=jti or sha, alert=alert, stage=AckStage.REJECTED,
                       reason=rej.reason.value, detail=rej.detail[:512] or None, ts=self.clock(), token_sha256=sha))

    # ------------------------------------------------------------ accepted commands
    def _start(self, claims: CommandClaims) -> None:
        targets = list(claims.targets)
        self._send(self._ack(claims, AckStage.ACCEPTED, targets))
        if claims.act is Action.STOP:
            self._stop(claims)
            return
        signal = claims.params.signal
        assert signal is not None and claims.params.duration_s is not None
        duration = min(claims.params.duration_s, self.max_activation_s)
        if signal is Signal.SILENT_TEST:
            for t in targets:
                self._stage(claims, t, AckStage.DONE)
            return
        fresh: list[SirenRun] = []
        for t in targets:
            current = self.runs.get(t)
            if signal is Signal.ALL_CLEAR and self._other_alert(current, claims.alert):
                self.counters["all_clear_other_alert"] += 1
                self._stage(claims, t, AckStage.DONE, None, "another alert holds the device")
                continue
            if current is not None and current.alert == claims.alert and claims.alert is not None \
                    and current.signal is signal:
                self.counters["cmd_retry_joined"] += 1  # a retry: ack again, do not restart the siren
                current.listeners.append(claims)
                if current.reached:
                    self._stage(claims, t, AckStage.SOUNDING)
                continue
            if current is not None:
                self._finish(current, "superseded")
            run = SirenRun(t, claims.alert, signal, [claims])
            self.runs[t] = run
            fresh.append(run)
        if fresh:
            loop = asyncio.get_running_loop()
            if self.spinup_s > 0:
                loop.call_later(self.spinup_s, self._reached, fresh, duration)
            else:
                self._reached(fresh, duration)

    def _reached(self, runs: list[SirenRun], duration: float) -> None:
        live = [r for r in runs if not r.finished]
        for run in live:
            run.reached = True
            self.counters["device_activated"] += 1
            for claims in run.listeners:
                self._stage(claims, run.siren, AckStage.SOUNDING)
        if live:
            handle = asyncio.get_running_loop().call_later(duration, self._expire, live)
            for run in live:
                run.timers.append(handle)

    def _expire(self, runs: list[SirenRun]) -> None:
        for run in runs:
            if not run.finished:
                self.counters["local_stop_timer"] += 1
                self._finish(run, None)

    def _finish(self, run: SirenRun, note: str | None) -> None:
        """End an activation: the siren is silent; every command listening to it gets its ``done``."""
        run.finished = True
        for handle in run.timers:
            handle.cancel()
        if self.runs.get(run.siren) is run:
            del self.runs[run.siren]
        note = note if run.reached or note else "stopped before sounding"
        for claims in run.listeners:
            self._stage(claims, run.siren, AckStage.DONE, None, note)

    def _stop(self, claims: CommandClaims) -> None:
        for t in claims.targets:
            run = self.runs.get(t)
            if self._other_alert(run, claims.alert):
                self.counters["stop_other_alert"] += 1
                self._stage(claims, t, AckStage.DONE, None, "not sounding for this alert")
                continue
            if run is not None:
                self._finish(run, None)
            self.counters["device_stopped"] += 1
            self._stage(claims, t, AckStage.DONE)

    @staticmethod
    def _other_alert(run: SirenRun | None, alert: str | None) -> bool:
        return run is not None and alert is not None and run.alert is not None and run.alert != alert

    # ------------------------------------------------------------ acks, coalesced per loop turn
    def _ack(self, claims: CommandClaims, stage: AckStage, devices: list[str], reason: str | None = None,
             detail: str | None = None) -> Ack:
        return Ack(gateway=self.gateway_id, cmd=claims.jti, alert=claims.alert, stage=stage, devices=tuple(devices),
                   reason=reason, detail=detail, ts=self.clock(), mode=Mode(claims.mode))

    def _stage(self, claims: CommandClaims, siren: str, stage: AckStage, reason: str | None = None,
               detail: str | None = None) -> None:
        self._batches.setdefault((claims.jti, stage, reason, detail), (claims, []))[1].append(siren)
        if not self._flush_queued:
            self._flush_queued = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Send the coalesced stage acks (in the order the stages were reached)."""
        self._flush_queued = False
        batches, self._batches = self._batches, {}
        for (_, stage, reason, detail), (claims, devices) in batches.items():
            self._send(self._ack(claims, stage, devices, reason, detail))

    def _send(self, ack: Ack) -> None:
        self.counters[f"ack_{ack.stage.value}"] += 1
        try:
            self.emit(ack)
        except Exception:
            self.counters["ack_emit_error"] += 1
            log.exception("[%s] ack sink failed", self.gateway_id)

    # ------------------------------------------------------------ state, for heartbeats and tests
    def statuses(self) -> tuple[DeviceStatus, ...]:
        out = []
        for s in self.sirens:
            run = self.runs.get(s)
            state = DeviceState.IDLE if run is None else (DeviceState.SOUNDING if run.reached
                                                          else DeviceState.SPINNING_UP)
            out.append(DeviceStatus(id=s, state=state))
        return tuple(out)

    @property
    def sounding(self) -> int:
        return sum(1 for r in self.runs.values() if r.reached and not r.finished)

    def close(self) -> None:
        for run in list(self.runs.values()):
            for handle in run.timers:
                handle.cancel()
        self.runs.clear()
