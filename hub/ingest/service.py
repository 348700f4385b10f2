"""Telemetry ingest as a hub service: an MQTT handler that only buffers, commits into the durable spool in a
worker thread, and a writer thread that sends what is spooled to the store, so SQLite fsyncs and HTTP never block
the event loop.

Wiring (the hub app does this when its config has a ``[store]``)::

    ingest = IngestService(IngestConfig(target=TargetConfig("v2", url, token=..., database="dozor"),
                                        spool_path=state_dir / "spool.sqlite"), zone_of=..., on_reading=...)
    dispatcher.on("telemetry", ingest.on_telemetry)
    dispatcher.on("event", ingest.on_event)
    ingest.add_lines([...])                       # any other points (fleet, alerts): same durable spool
    task = asyncio.create_task(ingest.run())      # cancel on shutdown, then ``await ingest.aclose()``
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from contract.models import CompactBatch, Event, TelemetryBatch
from hub.aqi import DEFAULT_TABLES
from hub.ingest import fastrows
from hub.ingest.pipeline import Ingest, OnReading, OnRows, ZoneOf
from hub.ingest.recovery import make_check
from hub.ingest.spool import Backoff, FlushResult, Spool, SpoolError
from hub.ingest.writer import TargetConfig, make_writer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestConfig:
    target: TargetConfig
    spool_path: Path
    flush_interval_s: float = 1.0
    aqi_tables: tuple[str, ...] = field(default=DEFAULT_TABLES)
    backoff_initial_s: float = 0.5
    backoff_cap_s: float = 60.0
    head_check: str = "auto"  # after an unclean stop, ask the store what it holds of the spool's head: "auto", "off"
    head_check_url: str = ""  # where to ask (default: the target's url; a vmselect for a VictoriaMetrics cluster)


class IngestService:
    """Buffers lines from MQTT handlers and ``add_lines``; ``commit`` puts them in the durable spool (then sends
    the deferred MQTT acks of the messages they came from); ``flush`` commits and writes to the store.

    Acks: with ``defer_ack`` wired (the hub's ingest connection, persistent session), a message is PUBACKed only
    after its lines are committed to SQLite. A commit happens every ``flush_interval_s``, as soon as
    ``ack_batch`` messages wait for their ack, and at most ``ack_delay_s`` after a message came in (the broker
    caps unacked messages in flight per client: Mosquitto's max_inflight_messages, 20 by default).

    No event-loop round trips on the hot path: the ``ack_batch``-th waiting ack starts the commit in a worker
    thread at once (from the MQTT read callback itself; one commit in flight at a time, the next one starts as
    soon as it is done if any message waits), and the commit wakes the writer thread from that worker thread, so
    the store gets the lines as soon as they are durable. (Through the loop, a commit and the write after it waited for five or six loop
    turns, each a burst of up to 32 messages: ~320 messages a commit, the writer idle in between.)"""

    def __init__(self, config: IngestConfig, *, zone_of: ZoneOf | None = None,
                 on_reading: OnReading | None = None, on_rows: OnRows | None = None, ack_batch: int = 16,
                 ack_delay_s: float = 0.05, on_committed: Callable[[list[str | None]], object] | None = None) -> None:
        self.config = config
        self.ingest = Ingest(aqi_tables=config.aqi_tables, zone_of=zone_of, on_reading=on_reading, on_rows=on_rows)
        self.spool = Spool(config.spool_path, make_writer(config.target),
                           backoff=Backoff(config.backoff_initial_s, cap=config.backoff_cap_s),
                           head_check=make_check(config.target, config.head_check, config.head_check_url))
        # from MQTT messages, grouped by their stable key (the spool de-duplicates by it, durably): text chunks of
        # one or more lines; their acks are in _acks when deferred
        self._buffer: list[tuple[str | None, list[str], int]] = []
        self._buffered = 0  # lines in _buffer
        self._local: list[str] = []   # from add_lines: nobody else holds these
        self._acks: list[Callable[[], object] | None] = []  # None: a message without an ack (QoS 0)
        # keys of gateway messages that left nothing to spool (every reading refused): receipted at the next commit
        self._keys_only: list[str] = []
        self.on_committed = on_committed  # (keys now durable) -> None: hub.ingest.receipts tells the gateways
        self.ack_batch = ack_batch
        self.ack_delay_s = ack_delay_s
        self._kick = asyncio.Event()
        self._lock = asyncio.Lock()
        self._inflight: asyncio.Future[None] | None = None  # the commit running in a worker thread, if any
        self._wake = threading.Event()  # a commit added lines (set in the committing thread): the writer goes
        self._writer: tuple[threading.Thread, threading.Event] | None = None  # the writer thread and its stop
        self.last_flush: FlushResult | None = None
        self.last_batch_at = 0.0  # wall-clock time (time.time()) telemetry lines were last buffered; 0: never
        if not fastrows.COMPILED:  # once per hub: the operator should know why ingest costs more CPU
            log.warning("ingest: telemetry is parsed in Python (%s): the same stored lines, ~40 %% more CPU per "
                        "reading", "DOZOR_PURE_INGEST is set" if fastrows._fastrows is not None else
                        "the compiled path was not built: install gcc and Python's headers, then reinstall dozor")

    def on_telemetry(self, msg: object) -> None:
        """Dispatcher handler: sync and cheap (convert and buffer); never raises for bad readings."""
        if not isinstance(msg, (TelemetryBatch, CompactBatch)):
            self.ingest.counters["not_a_batch"] += 1
            return
        chunks, n = self.ingest.batch_text(msg)
        key = f"t:{msg.gateway}:{msg.session}:{msg.seq}"
        if n:
            self.last_batch_at = time.time()
            self._buffer.append((key, chunks, n))
            self._buffered += n
            if msg.historical:
                self.ingest.counters["historical_batches"] += 1
        else:
            self._keys_only.append(key)

    def on_event(self, msg: object) -> None:
        if not isinstance(msg, Event):
            self.ingest.counters["not_an_event"] += 1
            return
        if lines := self.ingest.event_lines(msg):
            self._buffer.append((f"e:{msg.gateway}:{msg.id}", lines, len(lines)))
            self._buffered += len(lines)
        else:
            self._keys_only.append(f"e:{msg.gateway}:{msg.id}")

    def defer_ack(self, send: Callable[[], object] | None) -> None:
        """The MQTT connection hands over a message's PUBACK; it is sent after the next commit."""
        self._acks.append(send)
        if len(self._acks) >= self.ack_batch:
            if self._inflight is None:  # else the commit in flight starts the next one when it is done
                with contextlib.suppress(RuntimeError):  # (no loop: a test calling it directly)
                    self._start_commit(asyncio.get_running_loop())
        elif len(self._acks) == 1:  # never hold an ack longer than ack_delay_s (brokers cap unacked messages)
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_later(self.ack_delay_s, self._kick.set)

    def add_lines(self, lines: list[str]) -> None:
        """Queue ready-made line-protocol lines (fleet and alert points) for the same durable spool."""
        self._local += lines

    @property
    def buffered_lines(self) -> int:
        return self._buffered + len(self._local)

    async def commit(self) -> None:
        """Buffered lines into the spool (one SQLite transaction), then the deferred acks."""
        async with self._lock:
            await self._commit()

    async def _commit(self) -> None:
        """After the commit in flight (if any), everything buffered now; raises SpoolError if this one failed
        (its lines and acks are kept for the next try). Cancelling the caller never interrupts a commit."""
        while self._inflight is not None:
            with contextlib.suppress(SpoolError):  # counted and logged by _committed; its lines are buffered again
                await asyncio.shield(self._inflight)
        done = self._start_commit(asyncio.get_running_loop())
        if done is not None:
            await asyncio.shield(done)

    def _start_commit(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None] | None:
        """Take everything buffered into one spool transaction in a worker thread (none may be in flight); its
        acks and receipts go out when it is done (``_committed``, in the loop). Returns its future (None when
        there was nothing to commit: the acks of messages that left no lines went out at once)."""
        assert self._inflight is None
        lines, local, acks, buffered = self._buffer, self._local, self._acks, self._buffered
        self._buffer, self._local, self._acks, self._buffered = [], [], [], 0
        keys_only, self._keys_only = self._keys_only, []
        if not (lines or local):
            self._acknowledge(lines, keys_only, acks)
            return None
        done: asyncio.Future[None] = loop.create_future()
        self._inflight = done
        work = loop.run_in_executor(None, self._put, [(None, local), *lines])
        work.add_done_callback(lambda w: self._committed(w, done, lines, local, acks, keys_only, buffered))
        return done

    def _put(self, groups: list) -> None:
        """In the worker thread: the durable commit, then wake the writer from here (no loop turn between)."""
        self.spool.put_groups(groups)
        self._wake.set()

    def _committed(self, work: asyncio.Future[None], done: asyncio.Future[None], lines: list, local: list[str],
                   acks: list, keys_only: list[str], buffered: int) -> None:
        """In the loop: a commit ended. Committed: receipts and acks go out, and if messages came meanwhile, their
        commit starts at once (group commit: under load the commits follow each other, each taking what came during
        the one before; the last messages of a burst never wait for ``ack_delay_s``). Failed (disk error):
        everything is buffered again, in front of what came meanwhile, and nothing is acked."""
        self._inflight = None
        exc = work.exception() if not work.cancelled() else asyncio.CancelledError()
        if exc is None:
            self._acknowledge(lines, keys_only, acks)
            done.set_result(None)
        else:
            self._buffer[:0], self._local[:0], self._acks[:0] = lines, local, acks
            self._keys_only[:0] = keys_only
            self._buffered += buffered
            self.ingest.counters["spool_errors"] += 1
            log.error("ingest spool commit failed: %r", exc, exc_info=exc)
            done.set_exception(exc if isinstance(exc, SpoolError) else SpoolError(f"spool commit failed: {exc!r}"))
            done.exception()  # retrieved here: nobody need wait for a commit started from the read path
            return
        if self._acks:
            self._start_commit(asyncio.get_running_loop())

    def _acknowledge(self, lines: list, keys_only: list[str], acks: list) -> None:
        if self.on_committed is not None and (lines or keys_only):
            try:
                self.on_committed([key for key, _, _ in lines] + keys_only)
            except Exception:  # noqa: BLE001 - receipts are an extra: a failure costs re-sends, never the ingest
                self.ingest.counters["receipt_errors"] += 1
                log.exception("telemetry receipts failed")
        for send in acks:
            if send is not None:
                try:
                    send()
                except Exception:  # noqa: BLE001 - a dead connection: the broker redelivers, dedup catches it
                    self.ingest.counters["ack_errors"] += 1

    async def flush(self) -> FlushResult:
        """Commit, then write what the store takes (both in a worker thread)."""
        async with self._lock:  # one flush at a time; a cancelled caller never interrupts one (see run)
            await self._commit()
            result = await asyncio.to_thread(self.spool.flush)
            self._log_transition(result)
            return result

    def _log_transition(self, result: FlushResult) -> None:
        previous, self.last_flush = self.last_flush, result
        if result.written_lines or result.pending_lines == 0:
            if previous is not None and previous.pending_lines and not previous.store_up:
                log.warning("time-series store %s is back: %d spooled lines written, %d pending",
                            self.config.target.name, result.written_lines, result.pending_lines)
        elif not result.store_up and (previous is None or previous.store_up) and self.spool.last_error:
            log.warning("time-series store unavailable (%s): %d lines kept in the spool %s, retrying",
                        self.spool.last_error, result.pending_lines, self.config.spool_path)

    async def run(self) -> None:
        """Commits (and their PUBACKs) as messages come, and store writes as rows are spooled, in a thread of their
        own; a slow store write never holds back a commit."""
        await asyncio.gather(self._commit_loop(), self._write_loop())

    async def _commit_loop(self) -> None:
        """The timed commits (``ack_delay_s`` after a lone message, ``flush_interval_s``, ``add_lines``); a full
        ``ack_batch`` starts its commit from ``defer_ack`` already."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.config.flush_interval_s)
            self._kick.clear()
            # shielded: cancelling the loop (shutdown) lets a commit finish, so no line is spooled twice
            with contextlib.suppress(SpoolError):  # the disk: counted and logged; the lines stay buffered
                await asyncio.shield(asyncio.ensure_future(self.commit()))

    async def _write_loop(self) -> None:
        """The writer thread (``_write_thread``), for as long as this runs; cancelled: it stops after its write."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()
        stop = threading.Event()
        thread = threading.Thread(target=self._write_thread, args=(loop, ended, stop), name="ingest-writer",
                                  daemon=True)
        self._writer = (thread, stop)
        thread.start()
        try:
            await asyncio.shield(ended)
        finally:
            stop.set()
            self._wake.set()

    def _write_thread(self, loop: asyncio.AbstractEventLoop, ended: asyncio.Future[None],
                      stop: threading.Event) -> None:
        """Write what is spooled whenever a commit wakes it (from the committing thread), and every
        ``flush_interval_s`` (retries; the spool's own backoff decides when one is due)."""
        error: BaseException | None = None
        try:
            while not stop.is_set():
                self._wake.wait(self.config.flush_interval_s)
                self._wake.clear()
                if stop.is_set():
                    break
                try:
                    self._log_transition(self.spool.flush())
                except SpoolError:
                    loop.call_soon_threadsafe(self._count, "spool_errors")
                    log.exception("ingest spool failed")
        except BaseException as exc:  # noqa: BLE001 - handed to the loop: the task fails with it (a bug)
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(self._ended, ended, error)

    @staticmethod
    def _ended(ended: asyncio.Future[None], error: BaseException | None) -> None:
        if not ended.done():
            ended.set_result(None) if error is None else ended.set_exception(error)

    def _count(self, name: str) -> None:
        self.ingest.counters[name] += 1

    async def aclose(self, *, redelivered: bool = False) -> None:
        """Final flush and close. ``redelivered``: the MQTT connection is already gone, so messages whose
        acks were not sent yet will come again from the broker (persistent session): their lines are not
        spooled now (that would write them twice). Lines of QoS 0 messages and ``add_lines`` always are."""
        try:
            async with self._lock:
                while self._inflight is not None:  # a commit in flight ends first (its lines are durable then)
                    with contextlib.suppress(SpoolError):
                        await asyncio.shield(self._inflight)
                if redelivered and self._buffer and self._acks and None not in self._acks:
                    self.ingest.counters["left_to_broker_messages"] += len(self._acks)
                    self._buffer, self._acks, self._buffered = [], [], 0
                await self._commit()
                self._log_transition(await asyncio.to_thread(self.spool.flush))
        finally:
            if self._writer is not None:  # the writer thread stops, its last write done before the spool closes
                thread, stop = self._writer
                stop.set()
                self._wake.set()
                await asyncio.to_thread(thread.join)
            await asyncio.to_thread(self.spool.close)

    def stats(self) -> dict[str, int]:
        """Counters without touching SQLite (cheap enough for /healthz)."""
        out = {f"ingest.{k}": v for k, v in self.ingest.counters.items()}
        out.update({f"spool.{k}": v for k, v in self.spool.counters.items()})
        out["buffered_lines"] = self.buffered_lines
        out["acks_waiting"] = len(self._acks)
        out["ingest.compiled"] = int(fastrows.COMPILED)  # 1: version 2 series take the C pass (hub/ingest/fastrows.py)
        # wall-clock times (ms) of the last telemetry batch buffered and of the last write the store took
        out["ingest.last_batch_ms"] = round(self.last_batch_at * 1000)
        out["spool.last_write_ms"] = round(self.spool.last_write_at * 1000)
        if self.last_flush is not None:
            out["spool.pending_lines"] = self.last_flush.pending_lines
            out["store_up"] = int(self.last_flush.store_up)
        return out

    def counters(self) -> dict[str, int]:
        out = {f"ingest.{k}": v for k, v in self.ingest.counters.items()}
        out.update({f"spool.{k}": v for k, v in self.spool.counters.items()})
        out["spool.pending_lines"] = self.spool.pending_lines
        out["buffered_lines"] = self.buffered_lines
        return out
