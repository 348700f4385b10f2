"""Telemetry ingest as a hub service: an MQTT handler that only buffers, and a flush loop that spools and
writes in a worker thread, so SQLite fsyncs and HTTP never block the event loop.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from contract.models import CompactBatch, Event, TelemetryBatch
from hub.aqi import DEFAULT_TABLES
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
    caps unacked messages in flight per client: Mosquitto's max_inflight_messages, 20 by default)."""

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
        self._spooled = asyncio.Event()  # a commit added lines: the writer loop goes at once
        self._lock = asyncio.Lock()
        self.last_flush: FlushResult | None = None

    def on_telemetry(self, msg: object) -> None:
        """Dispatcher handler: sync and cheap (convert and buffer); never raises for bad readings."""
        if not isinstance(msg, (TelemetryBatch, CompactBatch)):
            self.ingest.counters["not_a_batch"] += 1
            return
        chunks, n = self.ingest.batch_text(msg)
        key = f"t:{msg.gateway}:{msg.session}:{msg.seq}"
        if n:
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
            self._kick.set()
        elif len(self._acks) == 1:  # never hold an ack longer than ack_delay_s (brokers cap unacked messages)
            with contextlib.suppress(RuntimeError):  # (no loop: a test calling it directly)
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
        lines, local, acks, buffered = self._buffer, self._local, self._acks, self._buffered
        self._buffer, self._local, self._acks, self._buffered = [], [], [], 0
        keys_only, self._keys_only = self._keys_only, []
        if lines or local:
            try:
                await asyncio.to_thread(self.spool.put_groups, [(None, local), *lines])
            except Exception:  # not committed (disk error): keep everything, ack nothing
                self._buffer[:0], self._local[:0], self._acks[:0] = lines, local, acks
                self._keys_only[:0] = keys_only
                self._buffered += buffered
                raise
            self._spooled.set()
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
        """Two loops: commits (and their PUBACKs) as messages come, and store writes as rows are spooled; a slow
        store write never holds back a commit."""
        await asyncio.gather(self._commit_loop(), self._write_loop())

    async def _commit_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.config.flush_interval_s)
            self._kick.clear()
            try:  # shielded: cancelling the loop (shutdown) lets a commit finish, so no line is spooled twice
                await asyncio.shield(asyncio.ensure_future(self.commit()))
            except SpoolError:  # the disk: log and count; the lines stay buffered for the next try
                self.ingest.counters["spool_errors"] += 1
                log.exception("ingest spool failed")

    async def _write_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._spooled.wait(), self.config.flush_interval_s)
            self._spooled.clear()
            try:
                result = await asyncio.shield(asyncio.ensure_future(asyncio.to_thread(self.spool.flush)))
            except SpoolError:
                self.ingest.counters["spool_errors"] += 1
                log.exception("ingest spool failed")
                continue
            self._log_transition(result)

    async def aclose(self, *, redelivered: bool = False) -> None:
        """Final flush and close. ``redelivered``: the MQTT connection is already gone, so messages whose
        acks were not sent yet will come again from the broker (persistent session): their lines are not
        spooled now (that would write them twice). Lines of QoS 0 messages and ``add_lines`` always are."""
        try:
            async with self._lock:
                if redelivered and self._buffer and self._acks and None not in self._acks:
                    self.ingest.counters["left_to_broker_messages"] += len(self._acks)
                    self._buffer, self._acks, self._buffered = [], [], 0
                await self._commit()
                self._log_transition(await asyncio.to_thread(self.spool.flush))
        finally:
            await asyncio.to_thread(self.spool.close)

    def stats(self) -> dict[str, int]:
        """Counters without touching SQLite (cheap enough for /healthz)."""
        out = {f"ingest.{k}": v for k, v in self.ingest.counters.items()}
        out.update({f"spool.{k}": v for k, v in self.spool.counters.items()})
        out["buffered_lines"] = self.buffered_lines
        out["acks_waiting"] = len(self._acks)
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
