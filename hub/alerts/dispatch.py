"""Dispatch: a phase's commands, signed one per gateway and put on the wire in steps (retries, escalation and
re-sends are retry.py's, through ``_send`` here).

Hot-path rules: a step's commands are signed in one pass and handed to the MQTT client at once;
SQLite writes are queued and committed in batches; the alert and its commands are durable before the first
command leaves (a restarted hub knows their acks). A phase goes out in steps of 25, 100, 400, 800 gateways
(one commit each, on PostgreSQL in a worker thread: ``Store.flush_off_loop``; the gateways' acks meanwhile
wait for the phase's last command: hub/sendfirst.py), the signer process (hub/signproc.py) signing the next
``SIGN_AHEAD`` steps while the loop lands one, and per-device rows wait until the last step is out
(``EngineBase.flush_queued``): measured with ``python -m bench.dispatch`` (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable

from contract import topics
from contract.command import (
    MAX_TARGETS,  # per command; bigger gateways get several commands
    CommandClaims,
    CommandParams,
    CommandTemplate,
    signing_input,
    token_sha256,
)
from contract.models import Action, Signal
from hub.alerts.base import EngineBase
from hub.alerts.model import (
    DONE,
    PHASE_ACTIVATE,
    PHASE_ALL_CLEAR,
    PHASE_STOP,
    UNREACHABLE,
    Alert,
    CmdRef,
    Track,
)
from hub.alerts.signer import GC_PAUSE, Batch, Outgoing, new_jtis
from hub.registry import OFFLINE
from hub.signproc import Signed, SignerError

log = logging.getLogger("hub.alerts")
Step = tuple[Batch, "asyncio.Future[Signed] | None"]  # a prepared step and its signatures to come

SEND_CHUNK = 25  # gateways signed and put on the wire in the first step (inside the API call)
SEND_CHUNK_GROWTH = 4  # each next step is this many times bigger ...
SEND_CHUNK_MAX = 800  # ... up to this many gateways (2,000 gateways: 25, 100, 400, 800, 675: five commits)
SIGN_AHEAD = 2  # steps handed to the signer process before the loop lands the one before them


class DispatchMixin(EngineBase):
    # ================================================================ phases and sending
    def _begin_phase(self, alert: Alert, phase: str, signal: Signal, *, t0: float, ends_at: float,
                     new_version: bool) -> None:
        if alert.phase_seq > 0 or phase != PHASE_ACTIVATE:
            alert.history.append({"phase": alert.phase, "version": alert.version, "signal": alert.phase_signal.value,
                                  "started_at": alert.phase_started_at,
                                  "summary": alert.summary().model_dump()})
        if new_version:
            alert.version += 1
        prev_phase = alert.phase
        alert.phase, alert.phase_signal = phase, signal
        alert.phase_seq += 1
        alert.phase_t0, alert.phase_started_at, alert.phase_ends_at = t0, self.clock(), ends_at
        alert.attempt, alert.tracking, alert.zones_settled = 0, True, phase == PHASE_STOP
        alert.dispatch_ms = None
        alert.updated_at = self.clock()
        # A stop after a stop (the operator pressed it again) keeps what is already confirmed silent.
        silent = {key for key, t in alert.tracks.items() if t.state == DONE} if phase == PHASE_STOP and \
            prev_phase == PHASE_STOP else set()
        now, offline = self.clock(), {}  # gateway -> offline, asked once per gateway, not per siren
        for key, track in alert.tracks.items():
            if key in silent:
                continue
            track.reset(now)
            if track.superseded_by is None:
                off = offline.get(track.gateway)
                if off is None:
                    off = offline[track.gateway] = self.registry.state_of(track.gateway) == OFFLINE
                if off:
                    track.state, track.reason = UNREACHABLE, "gateway_offline"  # tentative: still sent and retried
        alert.settled = asyncio.Event()
        alert.index()
        self._open[alert.id] = alert  # tick watches it until its zone states settle
        alert.last_sent_at, alert.last_sent_mono = self.clock(), self.mono()
        self._save(alert)
        # The first step's commands are prepared here and the next SIGN_AHEAD steps go to the signer process
        # at once, so it signs while the loop makes the alert durable, then signs, stores and writes the
        # first step to the socket itself, right here; then the zone states and the hooks start as tasks, and
        # the other steps follow in a task that yields between steps, so hooks run alongside the sends (never
        # before or after them in series) and early acks are handled between steps.
        chunks = self._chunks(t for t in alert.tracks.values()
                              if t.superseded_by is None and (t.state != DONE or phase != PHASE_STOP))
        old = self._trackers.pop(alert.id, None)
        if old is not None:
            old.cancel()
        back = self._hold_for_phase()  # until this phase's last command is out (or its task ends before that)
        first = self._prepare(alert, chunks[0]) if chunks else None
        ahead = deque(step for chunk in chunks[1:1 + SIGN_AHEAD] if (step := self._submit(alert, chunk)))
        self._flush(devices=False)  # the alert and its targets are durable before the first command leaves
        if first is not None:
            self._commit(first.sign(), retry=False)
        self._publish_zones(alert)
        task = self._spawn(self._phase(alert, alert.phase_seq, chunks[1 + SIGN_AHEAD:], ahead, back),
                           tracker_of=alert)
        task.add_done_callback(back)
        self._trackers[alert.id] = task

    def _hold_for_phase(self) -> Callable[..., None]:
        """The collector held off, and the gateway messages of the control connection held back (hub/sendfirst.py),
        while a phase's commands go out; returns the release of both (idempotent)."""
        backs = [GC_PAUSE.hold()]
        if self.send_first is not None:
            backs.append(self.send_first.hold())

        def release(*_: object) -> None:
            for back in backs:
                back()
        return release

    @staticmethod
    def _chunks(tracks: Iterable[Track]) -> list[list[Track]]:
        groups: dict[str, list[Track]] = {}
        for track in tracks:
            groups.setdefault(track.gateway, []).append(track)
        gws, out, i, size = list(groups), [], 0, SEND_CHUNK
        while i < len(gws):  # 25, 100, 400, ... gateways: the first commands leave at once, and a city of
            out.append([t for gw in gws[i:i + size] for t in groups[gw]])  # 2,000 costs 5 commits, not 80
            i, size = i + size, min(size * SEND_CHUNK_GROWTH, SEND_CHUNK_MAX)
        return out

    async def _phase(self, alert: Alert, seq: int, chunks: list[list[Track]], ahead: deque[Step],
                     sent: Callable[[], None] = lambda: None) -> None:
        """The phase's other steps, pipelined: ``ahead`` holds the steps already handed to the signer process;
        each time one is landed (committed, then written to the socket) the next is prepared and handed over,
        so the signer always has a step queued while the loop stores and sends."""
        for chunk in chunks:
            if alert.phase_seq != seq:
                break
            if ahead:
                await self._land(*ahead.popleft())
            if (step := self._submit(alert, chunk)) is not None:
                ahead.append(step)
        while ahead:  # (a superseded phase's steps are dropped unsent by _commit)
            await self._land(*ahead.popleft())
        sent()
        if alert.phase_seq != seq:
            return
        alert.dispatch_ms = round((self.mono() - alert.phase_t0) * 1000, 1)
        log.info("alert %s %s: %d commands on the wire %.1f ms after the request", alert.id, alert.phase,
                 sum(1 for _ in alert.by_gateway), alert.dispatch_ms)
        self._save(alert)
        await self._track(alert, seq)

    def _submit(self, alert: Alert, tracks: list[Track]) -> Step | None:
        """Prepare a step and hand it to the signer process (None: nothing in it may be sent)."""
        batch = self._prepare(alert, tracks)
        if not batch.commands:
            return None
        return batch, self._sign_elsewhere(batch)

    def _sign_elsewhere(self, batch: Batch) -> asyncio.Future[Signed] | None:
        try:
            return self.signer.submit(batch.key, batch.kid, batch.inputs)
        except Exception as exc:  # noqa: BLE001 - e.g. the process cannot start: _land signs on the loop
            self._signer_failed(exc)
            return None

    async def _land(self, batch: Batch, signed: asyncio.Future[Signed] | None) -> None:
        attached = False
        if signed is not None:
            await asyncio.wait([signed])  # never raises the future's own outcome (only this task's cancellation)
            # cancelled: its process was replaced (a new key) or closed after another failure
            if not signed.cancelled() and signed.exception() is not None:
                self._signer_failed(signed.exception())  # type: ignore[arg-type]
            elif not signed.cancelled():
                try:
                    batch.attach(signed.result())
                    attached = True
                except ValueError as exc:  # a wrong number of signatures
                    self._signer_failed(exc)
        if not attached:  # this batch is signed on the loop
            batch.sign()
        if (recorded := self._record(batch, retry=False, recheck=True)) is None:
            return  # a superseded phase's step is dropped unsent
        cmds, redo = recorded
        holders = self.holder_changes
        try:  # durable before it leaves; on PostgreSQL the commit runs in a thread while the loop prepares the next
            await self.store.flush_off_loop()
        except Exception:  # noqa: BLE001 - StoreError: keep alerting (as _flush does); the next flush retries
            self.metrics.store_errors.inc()
            log.exception("hub state write failed")
        alert = batch.alert
        if alert.phase_seq != batch.seq:
            return  # superseded while it was being stored
        if holders != self.holder_changes:  # another alert took or freed devices meanwhile: as in _record
            held: list[Outgoing] = []
            for c in cmds:  # one pass (a membership test of each command in the kept list compared them field by
                if all(self._may_send(alert, (t.gateway, t.device)) for t in c.tracks):  # field: O(n^2))
                    held.append(c)
                else:
                    redo += c.tracks
            cmds = held
        self._emit(cmds, batch.act.value, retry=False)
        if redo:
            self._send(alert, redo, retry=False)

    def _signer_failed(self, exc: BaseException) -> None:
        self.metrics.task_failures.labels("signer").inc()
        self._task_log.error(f"signer:{type(exc).__name__}", "command signer process failed (%r); signing on the "
                             "event loop, a new process for the next step", exc)
        if not isinstance(exc, SignerError):  # (a SignerError: the process is already closed, maybe replaced)
            self.signer.close()

    def _send(self, alert: Alert, tracks: list[Track], *, retry: bool) -> int:
        """Sign one command per gateway for ``tracks``, commit them, and hand them all to the MQTT client
        (written to the socket at once); nothing here waits per gateway."""
        return self._commit(self._prepare(alert, tracks).sign(), retry=retry)

    def _prepare(self, alert: Alert, tracks: list[Track]) -> Batch:
        """The commands for ``tracks`` (those this alert may drive), claims encoded, not yet signed."""
        groups: dict[str, list[Track]] = {}
        may_send = self._may_send
        for track in tracks:
            if not may_send(alert, (track.gateway, track.device)):  # another alert holds it (overlap.py)
                self.metrics.commands_withheld.inc()
                continue
            groups.setdefault(track.gateway, []).append(track)
        iat = int(self.clock())
        act = Action.STOP if alert.phase == PHASE_STOP else Action.ACTIVATE
        params = CommandParams()
        if act is Action.ACTIVATE:
            remaining = alert.phase_ends_at - self.clock()
            duration = max(1, min(int(-(-remaining // 1)), self.cfg.all_clear_duration_s
                                  if alert.phase == PHASE_ALL_CLEAR else alert.duration_s))
            params = CommandParams(signal=alert.phase_signal, duration_s=duration)
        kid = self.keys.kid
        batch = Batch(alert, alert.phase_seq, act, self.keys.private, kid, self.holder_changes)
        pieces = [(gw, gw_tracks[i:i + MAX_TARGETS]) for gw, gw_tracks in groups.items()
                  for i in range(0, len(gw_tracks), MAX_TARGETS)]
        if not pieces:
            return batch

        def claims(gw: str, jti: str, targets: tuple[str, ...]) -> CommandClaims:
            return CommandClaims(aud=gw, jti=jti, iat=iat, exp=iat + self.cfg.command_ttl_s, act=act,
                                 targets=targets, params=params, alert=alert.id, mode=alert.mode,
                                 by=alert.by_label())

        jtis = new_jtis(len(pieces))
        first = claims(pieces[0][0], jtis[0], tuple(t.device for t in pieces[0][1]))  # validates the shared part
        try:
            template: CommandTemplate | None = CommandTemplate(first, kid)
        except ValueError:  # e.g. an operator name holding a template mark: every command encoded on its own
            template = None
        for (gw, chunk), jti in zip(pieces, jtis, strict=True):
            targets = tuple(t.device for t in chunk)
            try:
                if template is None:
                    raise ValueError("no template")
                data, targets_json = template.signing_input(gw, jti, targets)
            except ValueError:  # outside the template's grammar: the model decides (and raises as it did)
                data, targets_json = signing_input(claims(gw, jti, targets), kid), json.dumps(list(targets))
            batch.commands.append(Outgoing(gw, jti, targets, chunk, data, targets_json))
        return batch

    def _commit(self, batch: Batch, *, retry: bool, recheck: bool = False) -> int:
        """Record a signed batch (command index, store), make it durable, then put it on the wire."""
        if (recorded := self._record(batch, retry=retry, recheck=recheck)) is None:
            return 0
        cmds, redo = recorded
        self._flush(devices=False)  # commands are durable before they leave: a restarted hub knows their acks
        self._emit(cmds, batch.act.value, retry=retry)
        if redo:
            return len(cmds) + self._send(batch.alert, redo, retry=retry)
        return len(cmds)

    def _record(self, batch: Batch, *, retry: bool,
                recheck: bool) -> tuple[list[Outgoing], list[Track]] | None:
        """Index a signed batch's commands and queue their rows; returns the commands to send and the tracks
        that need a fresh command (None: the phase was superseded). ``recheck``: it was signed while the loop
        ran on, so if the holders of devices changed meanwhile, a command naming a device this alert no longer
        holds is not sent (its other devices get a fresh command)."""
        alert = batch.alert
        if alert.phase_seq != batch.seq:
            return None
        out: list[Outgoing] = []
        redo: list[Track] = []
        recheck = recheck and batch.holders != self.holder_changes  # another alert took or freed devices meanwhile
        now = self.clock()
        act = batch.act.value
        jti_index, token_index, put_command, seq = self._jti, self._token, self.store.put_command, batch.seq
        sent_tracks: list[Track] = []
        for cmd in batch.commands:
            if recheck and not all(self._may_send(alert, (t.gateway, t.device)) for t in cmd.tracks):
                redo.extend(cmd.tracks)
                continue
            sha = cmd.sha or token_sha256(cmd.token)
            jti_index[cmd.jti] = CmdRef(alert.id, cmd.gateway, seq, cmd.targets, act)
            token_index[sha] = cmd.jti
            put_command(cmd.jti, alert.id, cmd.gateway, seq, act, cmd.targets_json, now, sha)
            sent_tracks.extend(cmd.tracks)
            out.append(cmd)
        for t in sent_tracks:
            t.attempts += 1
        self.store.put_devices(alert.id, sent_tracks)
        alert.last_sent_at, alert.last_sent_mono = now, self.mono()
        if retry:
            self._save(alert)  # (a phase's first send saves the alert once, after its last chunk)
        return out, redo

    def _emit(self, cmds: list[Outgoing], act: str, *, retry: bool) -> None:
        """Put recorded (and stored) commands on the wire."""
        tenant = self.cfg.topics
        out = [(tenant.gw(cmd.gateway, topics.GwChannel.CMD), cmd.token) for cmd in cmds]
        if self.publish_nowait is not None:
            sent = sum(self.publish_nowait(topic, token, 1, False) for topic, token in out)
            self.flush_writes()
            self.metrics.commands_sent.labels(act).inc(sent)
            if sent < len(out):  # not connected: the tracker re-sends at the deadline
                self.metrics.publish_errors.labels("command").inc(len(out) - sent)
        else:
            for topic, token in out:
                self._spawn(self._publish_cmd(topic, token, act))
        if retry:
            self.metrics.command_retries.inc(len(out))

    async def _publish_cmd(self, topic: str, token: bytes, act: str) -> None:
        if await self.publish(topic, token, 1, False):
            self.metrics.commands_sent.labels(act).inc()
        else:
            self.metrics.publish_errors.labels("command").inc()
