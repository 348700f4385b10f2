"""The telemetry pipeline: sensor readings and events -> durable outbox -> one MQTT batch per flush.

Intake (called by drivers, never blocks the event loop)::

    reading -> contract Validator (ranges, stuck, high humidity) -> queue -> Outbox.put_many  (stream "telemetry")
    health reading (kind "health", not validated)                -> queue -> Outbox.put_many  (stream "health")
    event (device, kind, ts, data) -> contract Event             -> queue -> Outbox.put_many  (stream "event")

A reading counts as *accepted* once ``put_many`` returned (durable, ``telemetry_accepted``). A small writer
task moves the queue into the outbox in a worker thread, so the fsync never stalls command handling.

Group commit: the writer task moves everything queued into the outbox in one transaction as soon as the
previous commit is done (never on a fixed tick), after a coalescing window of at most ``coalesce_s`` that any
driver waiting to poll ends at once; and each driver waits for ``stored(mark)`` (its own readings) before it
polls again, so a reading a driver reported is on disk before that driver's next poll.

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

Cost per reading (a gateway polls 16 sensors at 1 Hz on a Pi): when the drain is idle and nothing else waits
in the outbox, the writer forms the next flush straight from the queued readings in one worker-thread call,
and the flush persisted in ``meta`` is their one durable copy (one commit, one fsync; no outbox rows); after
its PUBACK nothing is committed: the next flush overwrites it, or it is cleared when the drain idles or stops
(a restart in between re-sends it with its key, de-duplicated). Otherwise the items go into outbox rows and
the ack after the PUBACK deletes them without an fsync of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import ValidationError

from contract import topics
from contract.codecs.validate import Validator, check_ranges
from contract.models import Event, Reading
from gateway.counters import Counters
from gateway.outbox import Lane, Outbox, OutboxError
from gateway.telemetry_drain import STATE_KEY, Drain
from gateway.telemetry_types import Flush, TelemetryError, TelemetrySettings
from runtime.backoff import Backoff

__all__ = ["STATE_KEY", "Telemetry", "TelemetryError", "TelemetrySettings"]

Publish = Callable[[str, bytes, int], Awaitable[None]]
Queued = tuple[str, str, bytes, Lane, Reading | None]  # stream, topic, payload, lane, the reading (if one)
STATE_FILE = "telemetry.json"  # before the state moved into the outbox: read once, if present


class Telemetry(Drain):
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
        self._queue: list[Queued] = []
        self._settling = 0  # drivers waiting in stored() before their next poll
        self._submitted = self._stored_n = 0  # items queued / stored so far (in queue order)
        self._committed = asyncio.Event()  # set (and replaced) at every commit
        self._poll_due = threading.Event()  # set when one starts waiting (ends the coalescing window)
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

    # ------------------------------------------------------------ intake
    def submit_reading(self, reading: Reading) -> bool:
        """Validate and queue one reading for the outbox. False (counted) if nothing valid was left."""
        if reading.kind == "health":  # the gateway's own numbers: no physical ranges, only finite values
            metrics, removed = check_ranges(reading.metrics, self.validator.counters, ranges={})
            self._sync_validator()
            if removed:
                reading = reading.model_copy(update={"metrics": metrics})
            return self._enqueue("health", self.t_telemetry, reading.to_bytes(), Lane.NORMAL, reading)
        checked = self.validator.check(reading)
        self._sync_validator()
        if checked is None:
            self.counters.inc("telemetry_rejected")
            self.log.warning("reading from %s rejected: no valid metric in %s", reading.device,
                             sorted(reading.metrics))
            return False
        return self._enqueue("telemetry", self.t_telemetry, checked.to_bytes(), Lane.NORMAL, checked)

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

    def _enqueue(self, stream: str, topic: str, payload: bytes, lane: Lane, reading: Reading | None = None) -> bool:
        if len(payload) + len(topic) > min(self.outbox.max_bytes, self.settings.max_batch_bytes):
            self.counters.inc(f"telemetry_too_large.{stream}")
            self.log.error("%s item of %d bytes is larger than a batch may be; dropped", stream, len(payload))
            return False
        if len(self._queue) >= self.settings.max_queue:
            self.counters.inc(f"telemetry_queue_overflow.{stream}")
            self.log.error("telemetry queue full (%d): %s item dropped; is the disk stuck?", len(self._queue),
                           stream)
            return False
        self._queue.append((stream, topic, payload, lane, reading))
        self._submitted += 1
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

    def _store(self, items: list[Queued], form: bool) -> Flush | None:
        """(worker thread) Store ``items`` and, if ``form``, take the next flush: one transaction, one fsync.

        Direct flush: when nothing else waits in the outbox and ``items`` are readings that fit one batch, they
        are not inserted as rows at all: the flush formed from them, persisted in the outbox's ``meta`` (as every
        pending flush is, for re-sending with its key after a restart), IS their durable copy. One small row
        written and overwritten instead of rows and two indexes inserted, read back, re-parsed and deleted."""
        readings = self._direct(items) if form else None
        if readings is not None:
            return self._flush_of([], readings, [], historical=False)
        with self.outbox.group():
            self.outbox.put_many([q[:4] for q in items])
            return self._next_flush() if form else None

    def _direct(self, items: list[Queued]) -> list[Reading] | None:
        s = self.settings
        if (self.state_path is None or len(items) > s.max_batch_items
                or self.outbox.depth > self.outbox.inflight  # something already waits: keep the order
                or sum(len(q[2]) + len(q[1]) for q in items) > s.max_batch_bytes):
            return None
        readings = [q[4] for q in items]
        return None if any(r is None for r in readings) else readings  # type: ignore[return-value]

    @property
    def submitted(self) -> int:
        """How many items were queued so far: a driver's mark for ``stored(mark)``."""
        return self._submitted

    async def stored(self, mark: int | None = None) -> None:
        """Wait until everything submitted so far (or the first ``mark`` items: a driver's own readings) is in
        the outbox. A driver waits here before it polls again: that ends the writer's coalescing window at once
        (no poll is ever delayed by the window)."""
        mark = self._submitted if mark is None else mark
        if self._stored_n >= mark:
            return
        self._settling += 1
        self._poll_due.set()
        try:
            while self._stored_n < mark:
                await self._committed.wait()
        finally:
            self._settling -= 1

    @property
    def all_stored(self) -> bool:
        return self._stored.is_set()

    def _store_next(self, form: bool) -> tuple[list[Queued], Flush | None]:
        """(worker thread) Group commit with a short coalescing window, then ``_store``: when the drain is idle,
        wait up to ``coalesce_s`` after the first queued item for more, unless a driver waits for the disk
        (``stored()``: it is about to poll), then commit what is queued. The window is waited here, in the worker
        thread the commit runs in anyway, so it costs the event loop no timer and no extra wake-up. It is bounded
        (``[telemetry] coalesce_ms`` ≤ 25 ms, a tenth of the fastest poll; never more than ``flush_s``), starts
        only when data is queued, and never runs on a tick."""
        window = min(self.settings.coalesce_s, self.settings.flush_s)
        self._poll_due.clear()
        if form and window > 0 and not self._settling:
            self._poll_due.wait(window)
        items = self._queue[:1000]  # the loop only appends meanwhile; the writer deletes what was stored
        return items, self._store(items, form)

    async def _writer(self) -> None:
        backoff = Backoff(self.settings.retry_min_s, cap=self.settings.retry_max_s)
        while True:
            await self._queued.wait()
            self._queued.clear()
            while self._queue:
                try:
                    if self._drain_idle() and not self._forming.locked():
                        async with self._forming:
                            items, flush = await asyncio.to_thread(self._store_next, self._drain_idle())
                            if flush is not None:
                                self.pending = flush
                    else:
                        items = self._queue[:1000]
                        await asyncio.to_thread(self.outbox.put_many, [q[:4] for q in items])
                except OutboxError as exc:
                    self.counters.inc("telemetry_store_errors")
                    delay = backoff.next_delay()
                    self.log.error("cannot store telemetry in the outbox: %s; retrying in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    continue
                backoff.reset()
                del self._queue[:len(items)]
                self._stored_n += len(items)  # items are stored in the order they were queued
                committed, self._committed = self._committed, asyncio.Event()
                committed.set()
                for stream, *_ in items:
                    self.counters.inc("telemetry_accepted" if stream != "event" else "telemetry_events_accepted")
                self._kick.set()
            self._stored.set()
