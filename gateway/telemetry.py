"""The telemetry pipeline: sensor readings and events -> durable outbox -> one MQTT batch per flush.

Intake (called by drivers, never blocks the event loop)::

    reading -> contract Validator (ranges, stuck, high humidity) -> queue -> Outbox.put_many  (stream "telemetry")
    health reading (kind "health", not validated)                -> queue -> Outbox.put_many  (stream "health")
    event (device, kind, ts, data) -> contract Event             -> queue -> Outbox.put_many  (stream "event")

A reading counts as *accepted* once ``put_many`` returned (durable, ``telemetry_accepted``). A small writer
task moves the queue into the outbox in a worker thread, so the fsync never stalls command handling.

Group commit: the writer task moves everything queued into the outbox in one transaction as soon as the
previous commit is done (never on a fixed tick), and drivers wait for ``stored()`` before they poll again,
so a reading a driver reported is on disk before the next poll.

Fresh data first: on every ``on_connected()`` the outbox's last id becomes the boundary between *historical*
items (stored while the link was down or before a restart) and *live* ones. Live items go out at once, as soon
as they are stored, in batches marked ``historical: false``; the backlog follows at the drain rate (a
``TokenBucket``) in batches marked ``historical: true``, only in the gaps between live batches.

Drain (a separate task the uplink can ``pause()``): take the next items (priority events, then live
readings, else paced backlog), turn them into one *flush*: each event
published on its own (``Event`` on ``.../event``, de-duplicable by ``Event.id``) and all readings as ONE
``TelemetryBatch`` with ``(session, seq)``; publish through the injected ``publish(topic, payload, qos)``,
which returns only after the broker's PUBACK; then ack the outbox items. If a publish fails the same flush
(same ``session``/``seq``, same bytes) is retried until it goes through, so a receiver that de-duplicates
by ``(gateway, session, seq)`` sees every reading exactly once. The flush being sent is also written to
the outbox (its ``meta`` table, key ``telemetry``) in the same transaction that hands its items out, and
cleared in the same transaction that acks them, so even after a power loss between PUBACK and the outbox ack
it is re-sent with its original key. Every start of the pipeline is a new ``session``.

Cost per reading (a gateway polls 16 sensors at 1 Hz on a Pi): when the drain is idle, the writer stores the
new items AND forms the next flush from them in one worker-thread call and one transaction (one fsync); the
ack after the PUBACK commits without an fsync of its own (lost on a power loss, the flush is re-sent with
its key and de-duplicated). So a reading costs two thread hops and one fsync, not four and six.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import ValidationError

from contract import topics
from contract.codecs import telemetry as wire
from contract.codecs.telemetry import NotCompactable
from contract.codecs.validate import Validator, check_ranges
from contract.models import Event, Reading, TelemetryBatch
from gateway.counters import Counters
from gateway.outbox import Lane, Outbox, OutboxError, TokenBucket
from gateway.telemetry_types import Flush, TelemetryError, TelemetrySettings
from runtime.backoff import Backoff

Publish = Callable[[str, bytes, int], Awaitable[None]]
STATE_FILE = "telemetry.json"  # before the state moved into the outbox: read once, if present
STATE_KEY = "telemetry"  # the outbox meta key of the drain's state (session, pending flush)


class Telemetry:
    def __init__(self, gateway_id: str, outbox: Outbox, *, publish: Publish | None = None,
                 state_dir: str | os.PathLike[str] | None = None, validator: Validator | None = None,
                 counters: Counters | None = None, log: logging.Logger | logging.LoggerAdapter | None = None,
                 clock: Callable[[], float] = time.time, settings: TelemetrySettings | None = None,
                 topics: topics.Topics = topics.DEFAULT) -> None:
        self.gateway_id = gateway_id
        self.outbox = outbox
        self.publish = publish
        self.settings = settings or TelemetrySettings()
        self.validator = validator or Validator(stuck_repeats=self.settings.stuck_repeats)
        self.counters = counters if counters is not None else Counters()
        self.log = log or logging.getLogger("dozor.gateway.telemetry")
        self.clock = clock
        self.t_telemetry = topics.gw(gateway_id, "telemetry")  # the tenant's topics (contract/topics.py)
        self.t_event = topics.gw(gateway_id, "event")
        self.state_path = Path(state_dir) / STATE_FILE if state_dir is not None else None
        self.bucket = self._new_bucket()
        self.session, self.seq, self.pending = self._load_state()
        self._queue: list[tuple[str, str, bytes, Lane]] = []
        self._queued = asyncio.Event()
        self._stored = asyncio.Event()
        self._stored.set()
        self._running = asyncio.Event()
        self._running.set()
        self._kick = asyncio.Event()  # new items stored
        self._reconnected = asyncio.Event()  # on_connected(): retry at once
        self._forming = asyncio.Lock()  # one flush is formed at a time (by the drain, or by the writer)
        self._validator_synced: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []
        self.live_from = outbox.last_id()  # ids above this are live; at or below, backlog (historical)

    def _new_bucket(self) -> TokenBucket:
        return TokenBucket(self.settings.rate, self.settings.burst)

    # ------------------------------------------------------------ state (session, pending flush)
    def _load_state(self) -> tuple[int, int, Flush | None]:
        if self.state_path is None:
            return int(self.clock()), 0, None
        try:
            raw = self.outbox.get_meta(STATE_KEY)
            data = json.loads(raw if raw is not None else self.state_path.read_text())
            session = int(data.get("session", 0)) + 1
            pending = Flush.from_json(data["pending"]) if data.get("pending") else None
        except FileNotFoundError:
            session, pending = 1, None
        except (OSError, ValueError, KeyError, TypeError, OutboxError) as exc:
            self.counters.inc("telemetry_state_unreadable")
            self.log.error("telemetry state %s unreadable (%s); starting a new session", self.state_path, exc)
            session, pending = int(self.clock()), None
        if pending is not None:
            pending.attempts = 1  # it may have reached the broker before the restart: a re-send is counted
            self.counters.inc("telemetry_pending_restored")
            self.log.info("re-sending flush (session %d, seq %d) interrupted by a restart", pending.session,
                          pending.seq)
        self._save(session, pending)
        return session, 0, pending

    def _save(self, session: int, pending: Flush | None) -> None:
        """Persist the drain's state in the outbox (inside ``outbox.group()``: in that transaction)."""
        if self.state_path is None:
            return
        self.outbox.set_meta(STATE_KEY, self._state_body(session, pending))

    @staticmethod
    def _state_body(session: int, pending: Flush | None) -> bytes:
        return json.dumps({"session": session, "pending": pending.to_json() if pending else None}).encode()

    # ------------------------------------------------------------ intake
    def submit_reading(self, reading: Reading) -> bool:
        """Validate and queue one reading for the outbox. False (counted) if nothing valid was left."""
        if reading.kind == "health":  # the gateway's own numbers: no physical ranges, only finite values
            metrics, removed = check_ranges(reading.metrics, self.validator.counters, ranges={})
            self._sync_validator()
            if removed:
                reading = reading.model_copy(update={"metrics": metrics})
            return self._enqueue("health", self.t_telemetry, reading.to_bytes(), Lane.NORMAL)
        checked = self.validator.check(reading)
        self._sync_validator()
        if checked is None:
            self.counters.inc("telemetry_rejected")
            self.log.warning("reading from %s rejected: no valid metric in %s", reading.device,
                             sorted(reading.metrics))
            return False
        return self._enqueue("telemetry", self.t_telemetry, checked.to_bytes(), Lane.NORMAL)

    def submit_event(self, device: str | None, kind: str, ts: float, data: dict[str, object], *,
                     priority: bool = False) -> str | None:
        """Queue an event; returns its id (the receiver de-duplicates by it), None if it was invalid."""
        event_id = uuid.uuid4().hex
        try:
            event = Event(gateway=self.gateway_id, id=event_id, device=device, kind=kind, ts=ts, data=data)
            payload = event.to_bytes()
        except (ValidationError, TypeError, ValueError) as exc:
            self.counters.inc("telemetry_bad_events")
            self.log.warning("event %s from %s rejected: %s", kind, device, str(exc)[:200])
            return None
        ok = self._enqueue("event", self.t_event, payload, Lane.PRIORITY if priority else Lane.NORMAL)
        return event_id if ok else None

    def _enqueue(self, stream: str, topic: str, payload: bytes, lane: Lane) -> bool:
        if len(payload) + len(topic) > min(self.outbox.max_bytes, self.settings.max_batch_bytes):
            self.counters.inc(f"telemetry_too_large.{stream}")
            self.log.error("%s item of %d bytes is larger than a batch may be; dropped", stream, len(payload))
            return False
        if len(self._queue) >= self.settings.max_queue:
            self.counters.inc(f"telemetry_queue_overflow.{stream}")
            self.log.error("telemetry queue full (%d): %s item dropped; is the disk stuck?", len(self._queue),
                           stream)
            return False
        self._queue.append((stream, topic, payload, lane))
        self._stored.clear()
        self._queued.set()
        return True

    def _sync_validator(self) -> None:
        for name, value in list(self.validator.counters.items()):
            delta = value - self._validator_synced.get(name, 0)
            if delta > 0:
                self._validator_synced[name] = value
                self.counters.inc(f"validate.{name}", delta)

    def _drain_idle(self) -> bool:
        """The drain waits for data: the writer may form its next flush (saves a thread hop and a commit)."""
        return self.pending is None and self._running.is_set() and self.publish is not None and bool(self._tasks)

    def _store(self, items: list[tuple[str, str, bytes, Lane]], form: bool) -> Flush | None:
        """(worker thread) Store ``items`` and, if ``form``, take the next flush: one transaction, one fsync."""
        with self.outbox.group():
            self.outbox.put_many(items)
            return self._next_flush() if form else None

    async def stored(self) -> None:
        """Wait until everything submitted so far is in the outbox."""
        await self._stored.wait()

    @property
    def all_stored(self) -> bool:
        return self._stored.is_set()

    async def _writer(self) -> None:
        backoff = Backoff(self.settings.retry_min_s, cap=self.settings.retry_max_s)
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue:
                items = self._queue[:1000]
                try:
                    if self._drain_idle() and not self._forming.locked():
                        async with self._forming:
                            flush = await asyncio.to_thread(self._store, items, self._drain_idle())
                            if flush is not None:
                                self.pending = flush
                    else:
                        await asyncio.to_thread(self.outbox.put_many, items)
                except OutboxError as exc:
                    self.counters.inc("telemetry_store_errors")
                    delay = backoff.next_delay()
                    self.log.error("cannot store telemetry in the outbox: %s; retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                del self._queue[:len(items)]
                for stream, *_ in items:
                    self.counters.inc("telemetry_accepted" if stream != "event" else "telemetry_events_accepted")
                self._kick.set()
            self._stored.set()

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
            if self.pending is None and self.outbox.depth <= self.outbox.inflight:  # nothing waits: no thread hop
                await self._nap(self.settings.flush_s, on_data=True)
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
        batch = None
        if readings:
            batch = self._encode(readings, historical)
            self.counters.inc("telemetry_historical_batches" if historical else "telemetry_live_batches")
        flush = Flush(self.session, self.seq, [i.id for i in items], batch, len(readings), messages)
        if batch is not None:
            self.seq += 1
            self._save(self.session, flush)
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
        try:
            self._acked(flush)  # no fsync of its own (durable=False): a few page writes, on the loop (no thread hop)
        except (OutboxError, OSError) as exc:
            self.counters.inc("telemetry_ack_errors")
            self.log.error("published but cannot ack the outbox: %s (the same flush is re-sent)", exc)
            return False
        return True

    def _acked(self, flush: Flush) -> None:
        clear = flush.batch is not None and self.state_path is not None
        self.outbox.ack(flush.ids, durable=False, meta=(STATE_KEY, self._state_body(self.session, None)) if clear
                        else None)
