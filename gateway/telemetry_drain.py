"""The telemetry drain: control by the uplink (pause, resume, reconnect), forming a flush from the outbox (live
items first, then the backlog at the drain rate), publishing it and acking its items. A mixin of
``gateway.telemetry.Telemetry`` (split from it along that line: intake and the writer there, sending here); see
that module's docstring for the protocol."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING

from pydantic import ValidationError

from contract.codecs import telemetry as wire
from contract.codecs.telemetry import NotCompactable
from contract.models import Reading, TelemetryBatch
from gateway.counters import Counters
from gateway.outbox import Lane, Outbox, OutboxError, TokenBucket
from gateway.receipts import Held, Key, ReceiptWindow, event_key, key_text
from gateway.telemetry_types import Flush, TelemetryError, TelemetrySettings
from runtime.backoff import Backoff

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

STATE_KEY = "telemetry"  # the outbox meta key of the drain's state (session, pending flush)


class Drain:
    gateway_id: str
    outbox: Outbox
    publish: Callable[[str, bytes, int], Awaitable[None]] | None
    settings: TelemetrySettings
    counters: Counters
    log: logging.Logger | logging.LoggerAdapter
    state_path: Path | None
    bucket: TokenBucket
    session: int
    seq: int
    pending: Flush | None
    live_from: int
    t_telemetry: str
    _running: asyncio.Event
    _kick: asyncio.Event
    _reconnected: asyncio.Event
    _forming: asyncio.Lock
    _tasks: list[asyncio.Task]
    _sent_in_meta: bool = False  # the meta row still holds a direct flush that was sent and PUBACKed
    receipts: ReceiptWindow | None = None  # gateway.receipts: what was PUBACKed, until the hub's receipt

    def _new_bucket(self) -> TokenBucket:
        return TokenBucket(self.settings.rate, self.settings.burst)

    def _save(self, session: int, pending: Flush | None) -> None:
        """Persist the drain's state in the outbox (inside ``outbox.group()``: in that transaction)."""
        if self.state_path is None:
            return
        self.outbox.set_meta(STATE_KEY, self._state_body(session, pending))

    @staticmethod
    def _state_body(session: int, pending: Flush | None) -> bytes:
        return json.dumps({"session": session, "pending": pending.to_json() if pending else None}).encode()

    async def _writer(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ control (for the uplink)
    def pause(self) -> None:
        """Stop draining after the current publish (e.g. while the uplink is down or busy)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def on_connected(self) -> None:
        """The uplink (re)connected: resume, retry at once, and pace the backlog from a fresh bucket; what is
        stored from now on is live and overtakes the backlog."""
        self.bucket = self._new_bucket()
        try:
            self.live_from = self.outbox.last_id()
        except OutboxError as exc:
            self.counters.inc("telemetry_drain_errors")
            self.log.error("cannot read the outbox: %s", exc)
        self._running.set()
        self._reconnected.set()
        self._kick.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    # ------------------------------------------------------------ drain
    async def run(self) -> None:
        """Writer and drain, until cancelled."""
        if self.publish is None:
            raise TelemetryError("no publish function: Telemetry(..., publish=uplink.publish_bulk)")
        self._tasks = [asyncio.create_task(self._writer(), name=f"telemetry {self.gateway_id} writer"),
                       asyncio.create_task(self._drain(), name=f"telemetry {self.gateway_id} drain")]
        try:
            await asyncio.gather(*self._tasks)
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            with contextlib.suppress(OutboxError):
                self._clear_sent()

    def _clear_sent(self) -> None:
        """Clear a sent direct flush from ``meta`` once the drain idles (no flush formed or forming: nothing
        else can be in that row). Until then a restart re-sends it with its key (de-duplicated by the hub)."""
        if self._sent_in_meta and self.pending is None and not self._forming.locked():
            self.outbox.ack((), durable=False, meta=(STATE_KEY, self._state_body(self.session, None)))
            self._sent_in_meta = False

    async def _nap(self, seconds: float, *, on_data: bool) -> None:
        """Sleep, but wake early on a reconnect, and (when idle) as soon as new items are stored. One event and a
        timeout scope, no helper tasks: the drain naps once per reading."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await (self._kick if on_data else self._reconnected).wait()  # a reconnect sets both
        self._reconnected.clear()  # consumed: what happened meanwhile is picked up by the next round
        if on_data:
            self._kick.clear()

    async def _drain(self) -> None:
        backoff = Backoff(self.settings.retry_min_s, cap=self.settings.retry_max_s)
        while True:
            await self._running.wait()
            if self.receipts is not None and (overdue := self.receipts.due()):
                await self._resend(overdue)
            if self.pending is None and self.outbox.depth <= self.outbox.inflight:  # nothing waits: no thread hop
                await self._nap(self.settings.flush_s, on_data=True)
                self._clear_sent()
                continue
            if self.pending is None:
                try:
                    async with self._forming:
                        if self.pending is None:
                            self.pending = await asyncio.to_thread(self._next_flush)
                except OutboxError as exc:
                    self.counters.inc("telemetry_drain_errors")
                    self.log.error("cannot read the outbox: %s", exc)
                    await asyncio.sleep(backoff.next_delay())
                    continue
                if self.pending is None:
                    waiting = self.outbox.depth - self.outbox.inflight
                    if waiting > 0:  # out of tokens: wait for the bucket, not for more data
                        await self._nap(max(0.01, self.bucket.wait_s(1)), on_data=True)  # live overtakes
                    else:
                        await self._nap(self.settings.flush_s, on_data=True)
                    continue
            await self._running.wait()  # paused while the flush was being formed: hold it
            if await self._send(self.pending):
                self.pending = None  # what was stored meanwhile goes next, at once (group commit, no tick)
                backoff.reset()
            else:
                await self._nap(backoff.next_delay(), on_data=False)

    def _next_flush(self) -> Flush | None:
        """(worker thread) Take the next items from the outbox and freeze them into a flush with a new seq."""
        s = self.settings
        items = self.outbox.batch(s.max_batch_bytes, s.max_batch_items, lanes=[Lane.PRIORITY], skip_stream="ack")
        room = s.max_batch_items - len(items)
        room_bytes = s.max_batch_bytes - sum(i.size for i in items)
        historical = False
        if room > 0 and room_bytes > 0:
            live = self.outbox.batch(room_bytes, room, lanes=[Lane.NORMAL], skip_stream="ack", min_id=self.live_from)
            if live:
                items += live
            elif (tokens := min(room, self.bucket.available())) > 0:
                old = self.outbox.batch(room_bytes, tokens, lanes=[Lane.NORMAL], skip_stream="ack",
                                        max_id=self.live_from)
                self.bucket.take(len(old))
                items += old
                historical = bool(old)
        if not items:
            return None
        readings: list[Reading] = []
        messages: list[tuple[str, bytes]] = []
        for item in items:
            if item.stream in ("telemetry", "health"):
                try:
                    readings.append(Reading.model_validate_json(item.payload))
                except ValidationError:
                    self.counters.inc("telemetry_corrupt_items")
                    self.log.error("outbox item %d is not a Reading; dropped", item.id)
            else:
                messages.append((item.topic, item.payload))
        return self._flush_of([i.id for i in items], readings, messages, historical=historical)

    def _flush_of(self, ids: list[int], readings: list[Reading], messages: list[tuple[str, bytes]], *,
                  historical: bool) -> Flush:
        """Freeze outbox items (``ids``; none for the writer's direct flush) into a flush with the next seq, and
        persist it (the ``meta`` row: durable with the caller's transaction)."""
        batch = None
        if readings:
            batch = self._encode(readings, historical)
            self.counters.inc("telemetry_historical_batches" if historical else "telemetry_live_batches")
        flush = Flush(self.session, self.seq, ids, batch, len(readings), messages)
        if batch is not None:
            self.seq += 1
            self._save(self.session, flush)
            self._sent_in_meta = False  # overwritten
        return flush

    def _encode(self, readings: list[Reading], historical: bool) -> bytes:
        """The batch in the configured wire version; version 1 for a batch version 2 cannot carry (counted)."""
        if self.settings.wire_version >= 2:
            try:
                return wire.encode(self.gateway_id, self.session, self.seq, readings, historical=historical)
            except NotCompactable as exc:
                self.counters.inc("telemetry_v1_fallbacks")
                self.log.warning("batch sent as wire version 1: %s", exc)
        return TelemetryBatch(gateway=self.gateway_id, session=self.session, seq=self.seq,
                              readings=tuple(readings), historical=historical).to_bytes()

    async def _send(self, flush: Flush) -> bool:
        assert self.publish is not None
        flush.attempts += 1
        if flush.attempts > 1:
            self.counters.inc("telemetry_flush_retries")
        try:
            while flush.sent_messages < len(flush.messages):
                topic, payload = flush.messages[flush.sent_messages]
                async with asyncio.timeout(self.settings.publish_timeout_s):  # no helper task per publish
                    await self.publish(topic, payload, 1)
                flush.sent_messages += 1
                self.counters.inc("telemetry_events_published")
            if flush.batch is not None:
                async with asyncio.timeout(self.settings.publish_timeout_s):
                    await self.publish(self.t_telemetry, flush.batch, 1)
                self.counters.inc("telemetry_batches_published")
                self.counters.inc("telemetry_readings_published", flush.readings)
                if flush.attempts > 1:
                    self.counters.inc("telemetry_batches_republished")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any uplink failure: keep the flush, retry it
            self.counters.inc("telemetry_publish_failed")
            if flush.attempts == 1 or flush.attempts % 20 == 0:
                self.log.warning("telemetry publish failed (session %d seq %d, attempt %d): %s", flush.session,
                                 flush.seq, flush.attempts, exc or type(exc).__name__)
            return False
        held = self._hold(flush) if self.receipts is not None else []
        try:
            self._acked(flush, held)  # no fsync of its own (durable=False): a few page writes, on the loop
        except (OutboxError, OSError) as exc:
            self.counters.inc("telemetry_ack_errors")
            self.log.error("published but cannot ack the outbox: %s (the same flush is re-sent)", exc)
            return False
        return True

    def _hold(self, flush: Flush) -> list[tuple[str, str, bytes]]:
        """The flush is PUBACKed: its batch and events wait in the receipt window for the hub's receipt (and in
        the outbox's ``held`` table: the rows returned, stored with the ack)."""
        assert self.receipts is not None
        if not self.receipts.enabled:
            return []
        held: list[tuple[Key, str, bytes]] = [(key, topic, payload) for topic, payload in flush.messages
                                              if (key := event_key(payload)) is not None]
        if flush.batch is not None:
            held.append((("t", flush.session, flush.seq), self.t_telemetry, flush.batch))
        for key, topic, payload in held:
            self.receipts.hold(key, topic, payload)
        return [(key_text(key), topic, payload) for key, topic, payload in held]

    async def _resend(self, items: list[Held]) -> None:
        """Publish again what the hub has not receipted in time (same key and bytes: the hub de-duplicates)."""
        assert self.publish is not None
        for item in items:
            try:
                async with asyncio.timeout(self.settings.publish_timeout_s):
                    await self.publish(item.topic, item.payload, 1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the link: the item stays held and is due again later
                self.counters.inc("telemetry_receipt_resend_failed")
                self.log.warning("re-send without receipt failed: %s", exc or type(exc).__name__)
                return
            self.counters.inc("telemetry_receipt_resends")

    def _acked(self, flush: Flush, held: list[tuple[str, str, bytes]]) -> None:
        clear = flush.batch is not None and self.state_path is not None
        if clear and not flush.ids:  # a direct flush: no rows to delete, and its meta row is overwritten by the
            self._sent_in_meta = True  # next flush's commit (or cleared when the drain idles): no commit for it
            if held:
                self.outbox.ack((), durable=False, held=held)
            return
        self._sent_in_meta = False
        self.outbox.ack(flush.ids, durable=False, meta=(STATE_KEY, self._state_body(self.session, None)) if clear
                        else None, held=held)
