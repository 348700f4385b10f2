"""Telemetry receipts, hub side: after a spool commit, tell each gateway which of its batches and events are now
durable (``contract.codecs.receipt``; why: see that module). Receipts are gathered per gateway and sent at most
every ``interval_s`` (QoS 0, on the ingest connection), so a backlog drain costs one small message per gateway per
interval, not one per batch; a lost receipt costs a re-send that the spool de-duplicates.

Wiring (hub/app.py)::

    receipts = Receipts(publish=mqtt_ingest.publish_nowait, topics=dispatcher.topics)
    ingest = IngestService(..., on_committed=receipts.add)
    task: receipts.run()
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace

from contract import topics as topics_mod
from contract.codecs import receipt as codec

log = logging.getLogger(__name__)

MAX_PENDING_GATEWAYS = 100_000  # bounded: a receipt is worth little once old (the gateway re-sends anyway)


class Receipts:
    def __init__(self, publish: Callable[[str, bytes, int], object], *,
                 topics: topics_mod.Topics = topics_mod.DEFAULT, interval_s: float = 1.0) -> None:
        self.publish = publish  # (topic, payload, qos) -> truthy when handed to the client
        self.topics = topics
        self.interval_s = interval_s
        # gateway -> session -> seqs; gateway -> event ids
        self._seqs: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        self._events: dict[str, list[str]] = defaultdict(list)
        self._hello: set[str] = set()  # gateways just born: an empty receipt says this hub sends receipts
        self.counters: Counter[str] = Counter()
        self._wake = asyncio.Event()

    def add(self, keys: Iterable[str | None]) -> None:
        """Spool keys just committed: ``t:<gateway>:<session>:<seq>`` and ``e:<gateway>:<event id>`` (others, and
        ``None`` for local lines, are not a gateway's)."""
        added = False
        for key in keys:
            if not key:
                continue
            kind, _, rest = key.partition(":")
            gateway, _, tail = rest.partition(":")
            if not gateway or not tail:
                continue
            if gateway not in self._seqs and gateway not in self._events and self.pending >= MAX_PENDING_GATEWAYS:
                self.counters["receipts_dropped"] += 1
                continue
            if kind == "t":
                session, _, seq = tail.partition(":")
                if session.isdigit() and seq.isdigit():
                    self._seqs[gateway][int(session)].append(int(seq))
                    added = True
            elif kind == "e":
                self._events[gateway].append(tail)
                added = True
        if added:
            self._wake.set()

    def hello(self, gateway: str) -> None:
        """A gateway was born: send it a receipt (empty unless something commits meanwhile), so a restarted
        gateway knows receipts come and re-sends what it still holds without one, before new telemetry of its
        own has been receipted."""
        if gateway in self._hello or self.pending + len(self._hello) < MAX_PENDING_GATEWAYS:
            self._hello.add(gateway)
            self._wake.set()
        else:
            self.counters["receipts_dropped"] += 1

    @property
    def pending(self) -> int:
        return len(self._seqs.keys() | self._events.keys())

    def flush(self) -> int:
        """Send what was gathered; returns the number of receipts handed to the MQTT client."""
        seqs, events, hello = self._seqs, self._events, self._hello
        self._seqs, self._events, self._hello = defaultdict(lambda: defaultdict(list)), defaultdict(list), set()
        sent, m, e = 0, codec.MAX_SEQS, codec.MAX_EVENTS
        for gateway in hello - seqs.keys() - events.keys():
            if not self._send(gateway, codec.Receipt(0, (), ())):  # (the ingest connection not up yet: a birth
                self._hello.add(gateway)  # retained on the broker reaches a starting hub first) tried again
                self._wake.set()
                continue
            sent += 1
        for gateway in seqs.keys() | events.keys():
            bodies = [codec.Receipt(s, tuple(qs[i:i + m])) for s, qs in (seqs.get(gateway) or {}).items()
                      for i in range(0, len(qs), m)]
            evs = events.get(gateway, [])
            for k, j in enumerate(range(0, len(evs), e)):  # events ride on the first receipts, else their own
                chunk = tuple(evs[j:j + e])
                bodies[k:k + 1] = [replace(bodies[k], events=chunk) if k < len(bodies) else codec.Receipt(0, (), chunk)]
            for body in bodies:
                sent += self._send(gateway, body)
        return sent

    def _send(self, gateway: str, body: codec.Receipt) -> int:
        try:
            ok = self.publish(self.topics.gw(gateway, topics_mod.GwChannel.RECEIPT), codec.encode(body), 0)
        except Exception:  # noqa: BLE001 - a receipt that cannot go costs a re-send, never the ingest
            ok = False
        self.counters["receipts_sent" if ok else "receipts_unsent"] += 1
        return int(bool(ok))

    async def run(self) -> None:
        """Send gathered receipts every ``interval_s`` while there are any; until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.interval_s)  # gather what else commits meanwhile
            self.flush()
