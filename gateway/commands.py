"""The command executor: verify a signed command once, refuse it with a reason, or drive the devices.

Order of checks (docs/protocol.md): contract.command.verify_command (malformed, algorithm, key,
signature, audience, lifetime, not-yet-valid, expired), then replay (SQLite), then every target
(unknown_target / unsupported). Any refusal: one ``rejected`` ack, a per-reason counter, and zero
activations. Otherwise ``accepted``, then per device ``sounding``/``playing`` and ``done``, or
``failed`` with a reason. Devices reaching the same stage together share one Ack.

The maximum activation duration is enforced here, with a local timer per device, whatever happens
to the stop command; ``duration_s`` is also capped at trust.max_activation_s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract.command import MAX_LIFETIME_S, AssetRef, CommandClaims, token_sha256, verify_command
from contract.errors import CommandRejected, RejectReason
from contract.models import Ack, AckStage, Action, Mode, Signal
from gateway.counters import Counters
from gateway.devices.base import Device
from gateway.errors import DeviceFailure, ReplayStoreError
from gateway.replay import StateStore

COALESCE_S = 0.01  # how long a stage ack waits for other devices reaching the same stage
STOP_TIMEOUT_S = 5.0


@dataclass
class CommandRun:
    """Ack bookkeeping for one accepted command (one jti)."""

    claims: CommandClaims
    pending1: set[str]  # devices that have not yet reached sounding/playing (or failed)
    pending2: set[str]  # devices that have not yet finished (done or failed)
    batches: dict[tuple[int, AckStage, str | None], list[str]] = field(default_factory=dict)
    details: dict[tuple[int, AckStage, str | None], str] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


@dataclass
class DeviceRun:
    """One device activation, possibly shared by several commands for the same alert (retries)."""

    device: Device
    alert: str | None
    signal: Signal
    listeners: list[CommandRun]
    task: asyncio.Task | None = None
    reached: bool = False
    superseded: bool = False
    finished: bool = False


class CommandExecutor:
    def __init__(self, gateway_id: str, *, keys: Mapping[str, Ed25519PublicKey], store: StateStore,
                 devices: Mapping[str, Device], emit: Callable[[Ack], None], counters: Counters | None = None,
                 max_activation_s: int = 900, log: logging.Logger | logging.LoggerAdapter | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.gateway_id = gateway_id
        self.keys = dict(keys)
        self.store = store
        self.devices = devices
        self.emit = emit
        self.counters = counters or Counters()
        self.max_activation_s = max_activation_s
        self.log = log or logging.getLogger("dozor.gateway.commands")
        self.clock = clock
        self.runs: dict[str, DeviceRun] = {}
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------ entry point
    async def handle(self, payload: bytes | str) -> CommandClaims | None:
        """Verify and execute one command payload. Never raises (except cancellation)."""
        self.counters.inc("cmd_received")
        try:
            claims = self._verify(payload)
        except CommandRejected as rej:
            self._reject(payload, rej)
            return None
        except Exception as exc:  # a bug below must not let a command through, nor kill the uplink
            self.counters.inc("cmd_handler_error")
            self.log.exception("command verification crashed")
            self._reject(payload, CommandRejected(RejectReason.MALFORMED, f"internal: {type(exc).__name__}"))
            return None
        self.counters.inc("cmd_accepted")
        self.log.info("command %s %s for alert %s (%s) by %s: %d targets", claims.jti, claims.act.value, claims.alert,
                      claims.mode.value, claims.by or "unnamed", len(claims.targets))
        self._start(claims)
        return claims

    def _verify(self, payload: bytes | str) -> CommandClaims:
        now = self.clock()
        claims = verify_command(payload, keys=self.keys, audience=self.gateway_id, now=now, stop_never_expires=True)
        stop = claims.act is Action.STOP  # a stop is never refused for its age (invariant 10): it is scoped instead
        if not stop and self.store.issued_before_restart(claims.iat):
            raise CommandRejected(RejectReason.ISSUED_BEFORE_RESTART, "the gateway restarted uncleanly since; "
                                  "the hub re-sends a fresh command", jti=claims.jti, alert=claims.alert)
        if not stop and self.store.issued_before_floor(claims.iat):
            raise CommandRejected(RejectReason.BEFORE_FLOOR, "issued before this gateway's state dir existed",
                                  jti=claims.jti, alert=claims.alert)
        try:
            keep = max(claims.exp, int(now) + MAX_LIFETIME_S) if stop else claims.exp  # stops outlive exp
            fresh = self.store.first_sighting(claims.jti, keep, now=now)
        except ReplayStoreError as exc:
            # Without a working replay store we cannot prove freshness: refuse rather than risk a replay.
            self.counters.inc("replay_store_error")
            raise CommandRejected(RejectReason.REPLAYED, f"replay store unavailable: {exc}",
                                  jti=claims.jti, alert=claims.alert) from None
        if not fresh:
            raise CommandRejected(RejectReason.REPLAYED, jti=claims.jti, alert=claims.alert)
        for target in claims.targets:
            dev = self.devices.get(target)
            if dev is None:
                raise CommandRejected(RejectReason.UNKNOWN_TARGET, target, jti=claims.jti, alert=claims.alert)
            need = "stop" if claims.act is Action.STOP else (
                "silent_test" if claims.params.signal is Signal.SILENT_TEST else "activate")
            if need not in dev.capabilities:
                raise CommandRejected(RejectReason.UNSUPPORTED, f"{target} ({dev.kind.value}) cannot {need}",
                                      jti=claims.jti, alert=claims.alert)
        return claims

    # ------------------------------------------------------------ refusals
    def _reject(self, payload: bytes | str, rej: CommandRejected) -> None:
        self.counters.inc(f"cmd_rejected_{rej.reason.value}")
        self.counters.inc("cmd_rejected")
        sha = token_sha256(payload)
        jti = rej.jti if isinstance(rej.jti, str) and 1 <= len(rej.jti) <= 128 else None
        alert = rej.alert if isinstance(rej.alert, str) and len(rej.alert) <= 128 else None
        self.log.warning("command rejected: %s %s (jti=%r)", rej.reason.value, rej.detail[:120], jti)
        self._send(Ack(gateway=self.gateway_id, cmd=jti or sha, alert=alert, stage=AckStage.REJECTED,
                       reason=rej.reason.value, detail=rej.detail[:512] or None, ts=self.clock(),
                       token_sha256=sha))

    def _send(self, ack: Ack) -> None:
        self.counters.inc(f"ack_{ack.stage.value}")
        try:
            self.emit(ack)
        except Exception:
            self.counters.inc("ack_emit_error")
            self.log.exception("ack sink failed")

    # ------------------------------------------------------------ accepted commands
    def _start(self, claims: CommandClaims) -> None:
        targets = list(claims.targets)
        run = CommandRun(claims, pending1=set(targets), pending2=set(targets))
        self._send(self._ack(claims, AckStage.ACCEPTED, targets))
        if claims.act is Action.STOP:
            self._spawn(self._stop_targets(run), f"stop {claims.jti}")
            return
        signal = claims.params.signal
        assert signal is not None and claims.params.duration_s is not None
        duration = claims.params.duration_s
        if duration > self.max_activation_s:
            self.counters.inc("duration_capped")
            duration = self.max_activation_s
        if signal is Signal.SILENT_TEST:
            for t in targets:
                run.pending1.discard(t)
                self._spawn(self._silent_test(run, self.devices[t]), f"selftest {t}")
            return
        for t in targets:
            current = self.runs.get(t)
            if signal is Signal.ALL_CLEAR and self._other_alert(current, claims.alert):
                # An all-clear silences only what sounds for its own alert; another alert keeps its siren.
                self.counters.inc("all_clear_other_alert")
                self._stage(run, t, AckStage.DONE, None, "another alert holds the device")
                continue
            if current is not None and not current.finished and current.alert == claims.alert \
                    and claims.alert is not None and current.signal is signal:
                # A retry for an activation already under way: re-ack, do not restart the device.
                self.counters.inc("cmd_retry_joined")
                current.listeners.append(run)
                if current.reached:
                    self._stage(run, t, self._started_stage(current.device))
                continue
            if current is not None and not current.finished:
                current.superseded = True  # the new activation replaces it without a stop in between
                if current.task is not None:
                    current.task.cancel()
            dr = DeviceRun(self.devices[t], claims.alert, signal, [run])
            self.runs[t] = dr
            dr.task = self._spawn(self._drive(dr, duration, claims.params.asset), f"drive {t}")

    @staticmethod
    def _started_stage(dev: Device) -> AckStage:
        return AckStage.PLAYING if dev.kind.value == "speaker" else AckStage.SOUNDING

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.counters.inc("cmd_task_error")
            self.log.error("command task %s crashed: %r", task.get_name(), task.exception())

    async def _drive(self, dr: DeviceRun, duration: int, asset: AssetRef | None) -> None:
        dev = dr.device
        failed: DeviceFailure | None = None
        try:
            try:
                stage = await dev.activate(dr.signal, duration, dr.alert, asset)
            except DeviceFailure as exc:
                failed = exc
                self.counters.inc("device_failed")
                for run in list(dr.listeners):
                    self._stage(run, dev.id, AckStage.FAILED, exc.reason, exc.detail)
                return
            dr.reached = True
            self.counters.inc("device_activated")
            for run in list(dr.listeners):
                self._stage(run, dev.id, stage)
            try:
                await asyncio.wait_for(dev.wait_finished(), timeout=duration)
            except TimeoutError:
                self.counters.inc("local_stop_timer")
            except DeviceFailure as exc:
                failed = exc
        finally:
            dr.finished = True
            if self.runs.get(dev.id) is dr:
                del self.runs[dev.id]
            confirmed = True
            if not dr.superseded:
                confirmed = await self._safe_stop(dev)
            if dr.reached or dr.superseded:
                note = "superseded" if dr.superseded else (
                    None if confirmed else "stop not confirmed; the controller's own duration ends it")
                for run in list(dr.listeners):
                    if failed is not None and dr.reached:
                        self._stage(run, dev.id, AckStage.FAILED, failed.reason, failed.detail)
                    else:
                        self._stage(run, dev.id, AckStage.DONE, None, note)
            elif failed is None:  # cancelled before it sounded (stop command or shutdown)
                for run in list(dr.listeners):
                    self._stage(run, dev.id, AckStage.DONE, None, "stopped before sounding")

    async def _safe_stop(self, dev: Device) -> bool:
        """Stop a device, shielded from cancellation, never raising. True if the stop was confirmed."""
        try:
            await asyncio.shield(asyncio.wait_for(dev.stop(), STOP_TIMEOUT_S))
            self.counters.inc("device_stopped")
            return True
        except (DeviceFailure, TimeoutError) as exc:
            # The controller's own DURATION_S ends the activation even if this stop is lost.
            self.counters.inc("device_stop_failed")
            self.log.warning("stop %s failed: %s", dev.id, exc)
            return False
        except asyncio.CancelledError:
            self.counters.inc("device_stop_cancelled")
            raise

    async def _silent_test(self, run: CommandRun, dev: Device) -> None:
        try:
            await dev.silent_test()
        except DeviceFailure as exc:
            self._stage(run, dev.id, AckStage.FAILED, exc.reason, exc.detail)
            return
        self._stage(run, dev.id, AckStage.DONE)

    @staticmethod
    def _other_alert(dr: DeviceRun | None, alert: str | None) -> bool:
        return dr is not None and not dr.finished and alert is not None and dr.alert is not None \
            and dr.alert != alert

    async def _stop_targets(self, run: CommandRun) -> None:
        """Stop the targets' activations for this stop's alert. A device driven for another alert is left alone
        (a replayed stop of an old alert changes nothing); a device with no activation here (e.g. sounding since
        before a gateway crash) is stopped, since stopping is always safe."""
        cancelled: list[str] = []
        skipped: list[str] = []
        waits = []
        for t in run.claims.targets:
            run.pending1.discard(t)
            dr = self.runs.get(t)
            if self._other_alert(dr, run.claims.alert):
                self.counters.inc("stop_other_alert")
                skipped.append(t)
                continue
            if dr is not None and dr.task is not None and not dr.finished:
                dr.task.cancel()  # its cleanup stops the device and acks done to its own command
                cancelled.append(t)
                waits.append(dr.task)
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)
        # Stop the other targets too, even if nothing runs here (e.g. after a gateway restart).
        for t in skipped:
            self._stage(run, t, AckStage.DONE, None, "not sounding for this alert")
        others = [t for t in run.claims.targets if t not in cancelled and t not in skipped]
        results = await asyncio.gather(*(self._stop_one(self.devices[t]) for t in others), return_exceptions=True)
        for t in cancelled:
            self._stage(run, t, AckStage.DONE)
        for t, res in zip(others, results, strict=True):
            if isinstance(res, DeviceFailure):
                self._stage(run, t, AckStage.FAILED, res.reason, res.detail)
            elif isinstance(res, TimeoutError):
                self._stage(run, t, AckStage.FAILED, "timeout", "stop not confirmed")
            elif isinstance(res, BaseException):
                raise res
            else:
                self._stage(run, t, AckStage.DONE)

    async def _stop_one(self, dev: Device) -> None:
        await asyncio.wait_for(dev.stop(), STOP_TIMEOUT_S)

    # ------------------------------------------------------------ ack batching
    def _ack(self, claims: CommandClaims, stage: AckStage, devices: list[str], reason: str | None = None,
             detail: str | None = None) -> Ack:
        return Ack(gateway=self.gateway_id, cmd=claims.jti, alert=claims.alert, stage=stage,
                   devices=tuple(devices), reason=reason, detail=(detail or None) and detail[:512],
                   ts=self.clock(), mode=Mode(claims.mode))

    def _stage(self, run: CommandRun, dev_id: str, stage: AckStage, reason: str | None = None,
               detail: str | None = None) -> None:
        phase = 1 if stage in (AckStage.SOUNDING, AckStage.PLAYING) or (
            stage is AckStage.FAILED and dev_id in run.pending1) else 2
        if phase == 1:
            run.pending1.discard(dev_id)
            if stage is AckStage.FAILED:
                run.pending2.discard(dev_id)
        else:
            run.pending1.discard(dev_id)
            run.pending2.discard(dev_id)
        key = (phase, stage, reason)
        run.batches.setdefault(key, []).append(dev_id)
        if detail:
            run.details[key] = detail
        if (phase == 1 and not run.pending1) or (phase == 2 and not run.pending2):
            self._flush(run, upto=phase)
        elif run.timer is None:
            run.timer = asyncio.get_running_loop().call_later(COALESCE_S, self._flush, run, 2)

    def _flush(self, run: CommandRun, upto: int = 2) -> None:
        if run.timer is not None and upto == 2:
            run.timer.cancel()
            run.timer = None
        for key in sorted((k for k in run.batches if k[0] <= upto), key=lambda k: k[0]):
            devices = run.batches.pop(key)
            self._send(self._ack(run.claims, key[1], devices, key[2], run.details.pop(key, None)))
        if run.timer is not None and not run.batches:
            run.timer.cancel()
            run.timer = None

    # ------------------------------------------------------------ shutdown
    async def close(self) -> None:
        """Stop every running activation (devices are stopped, done acks emitted) and wait for tasks."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    @property
    def active(self) -> dict[str, str | None]:
        return {dev: dr.alert for dr in self.runs.values() for dev in [dr.device.id]}

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
