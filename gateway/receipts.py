"""Telemetry receipts, gateway side: what the drain published and the broker PUBACKed stays here until the hub's
receipt (``contract.codecs.receipt``) says it is in the hub's durable spool; what has no receipt after
``timeout_s`` is published again (same key, same bytes: the hub de-duplicates) at most ``max_resends`` times.

A PUBACK is only the broker's word: a clustered broker losing a node can acknowledge a QoS 1 publish and lose it
(NATS 2.9), and a single broker killed with ``kill -9`` loses the QoS 1 messages it held in memory. The outbox
covers the gateway's own crash up to the PUBACK; this window covers the broker's loss after it.

- **Held in memory and in the outbox, bounded** (``max_held`` messages): the drain stores each held message in the
  outbox's ``held`` table in the transaction that acks its items, ``on_release`` deletes it when its receipt
  comes (or it is given up or pushed out), and a restarted gateway ``restore``s the rest. So a gateway that
  restarts while the broker loses its last batches still sends them again. Neither write has an fsync of its own
  (the outbox's ack path): a power cut of the gateway may undo them, as it may undo the ack itself.
- **Only against a hub that sends receipts.** Re-sends start once a first receipt has arrived (a hub older than
  receipts, or with ``[mqtt] receipts = false``, never sends one: nothing is re-sent, held items age out).
- **Given up only while the hub answers.** An item re-sent ``max_resends`` times is given up only if receipts
  for other items came after its last re-send (the hub is up and never stored it: e.g. it refuses that payload).
  While no receipt comes at all (the hub down), items stay held and are re-sent every ``8 × timeout_s``.
- Never raises on input: a malformed receipt is counted (``telemetry_receipt_bad``) and ignored.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from contract.codecs import receipt as codec
from contract.errors import MalformedMessage
from gateway.counters import Counters
from runtime.ratelog import RateLimitedLog

Key = tuple[str, int, int] | tuple[str, str]  # ("t", session, seq) | ("e", event id)


@dataclass(slots=True)
class Held:
    key: Key
    topic: str
    payload: bytes
    due: float
    sent: float  # when it was last published
    resends: int = 0


def key_text(key: Key) -> str:
    """A key as the outbox stores it: ``t/<session>/<seq>`` or ``e/<event id>``."""
    return "/".join(str(part) for part in key)


def key_from_text(text: str) -> Key | None:
    kind, _, rest = text.partition("/")
    if kind == "e" and rest:
        return ("e", rest)
    session, _, seq = rest.partition("/")
    if kind == "t" and session.isdigit() and seq.isdigit():
        return ("t", int(session), int(seq))
    return None


def event_key(payload: bytes) -> Key | None:
    """The receipt key of a stored event payload (plain JSON with an ``id``), or None."""
    try:
        ident = json.loads(payload).get("id")
    except (ValueError, UnicodeDecodeError, AttributeError, RecursionError):
        return None
    return ("e", ident) if isinstance(ident, str) and ident else None


class ReceiptWindow:
    def __init__(self, counters: Counters, log: logging.Logger | logging.LoggerAdapter, *, timeout_s: float = 15.0,
                 max_held: int = 4096, max_resends: int = 5, clock: Callable[[], float] = time.monotonic,
                 on_release: Callable[[list[str]], object] | None = None) -> None:
        self.counters = counters
        self.on_release = on_release  # (key texts) -> None: the outbox forgets them (gateway.outbox.release_held)
        self.log = RateLimitedLog(log, 60.0)
        self.timeout_s = timeout_s
        self.max_held = max_held
        self.max_resends = max_resends
        self.clock = clock
        self.held: dict[Key, Held] = {}  # in send order (a re-sent item moves to the end)
        self.active = False  # a receipt has arrived: the hub sends them
        self._earliest = float("inf")  # no held item is due before this (a lower bound: scans stay rare)
        self.last_receipt = float("-inf")  # when a receipt last released something

    @property
    def enabled(self) -> bool:
        return self.timeout_s > 0

    def hold(self, key: Key, topic: str, payload: bytes) -> None:
        """``payload`` was published on ``topic`` and PUBACKed: keep it until its receipt."""
        if not self.enabled:
            return
        self.held.pop(key, None)
        now = self.clock()
        item = self.held[key] = Held(key, topic, payload, now + self.timeout_s, now)
        self._earliest = min(self._earliest, item.due)
        gone = []
        while len(self.held) > self.max_held:
            gone.append(self.held.pop(next(iter(self.held))).key)
            self.counters.inc("telemetry_receipt_overflow" if self.active else "telemetry_receipt_unused")
        self._release(gone)

    def restore(self, rows: list[tuple[str, str, bytes]]) -> None:
        """Held messages a previous run left in the outbox (oldest first): held again, due ``timeout_s`` from now
        (re-sent once the hub's receipts show it is there)."""
        bad = [text for text, _, _ in rows if key_from_text(text) is None]
        for text, topic, payload in rows:
            if (key := key_from_text(text)) is not None:
                self.hold(key, topic, payload)
        self.counters.inc("telemetry_receipt_restored", len(rows) - len(bad))
        if bad:
            self.counters.inc("telemetry_receipt_bad_keys", len(bad))
        self._release(bad)

    def _release(self, keys: list) -> None:
        """Tell the outbox these are no longer held. Never raises (a receipt handler calls it)."""
        if not keys or self.on_release is None:
            return
        try:
            self.on_release([k if isinstance(k, str) else key_text(k) for k in keys])
        except Exception as exc:  # noqa: BLE001 - the outbox's disk: the rows come back after a restart (re-sent, de-duplicated)
            self.counters.inc("telemetry_receipt_store_errors")
            self.log.warning("receipt-store", "cannot forget receipted messages in the outbox: %s", exc)

    def on_payload(self, payload: bytes) -> None:
        """The uplink's handler for ``…/receipt``. Never raises."""
        try:
            r = codec.decode(payload)
        except MalformedMessage as exc:
            self.counters.inc("telemetry_receipt_bad")
            self.log.warning("bad-receipt", "receipt refused: %s", exc)
            return
        self.active = True
        self.counters.inc("telemetry_receipts")
        done: list[Key] = []
        for key in [("t", r.session, seq) for seq in r.seqs] + [("e", ident) for ident in r.events]:
            if self.held.pop(key, None) is not None:
                done.append(key)
        self.counters.inc("telemetry_receipted", len(done))
        if done:
            self.last_receipt = self.clock()
            self._release(done)

    def due(self) -> list[Held]:
        """Held items whose receipt is overdue, to publish again now (each moves to the end with a new deadline);
        items re-sent ``max_resends`` times are given up (counted, logged) if the hub receipted others since."""
        if not self.active or not self.held:
            return []
        now, out, gone = self.clock(), [], []
        if now < self._earliest:
            return out
        for item in list(self.held.values()):
            if item.due > now:
                continue
            del self.held[item.key]
            if item.resends >= self.max_resends and self.last_receipt > item.sent:
                self.counters.inc("telemetry_receipt_gave_up")
                self.log.warning("receipt-gave-up", "no receipt for %s after %d re-sends; given up", item.key,
                                 item.resends)
                gone.append(item.key)
                continue
            item.resends += 1
            item.sent, item.due = now, now + self.timeout_s * min(2 ** item.resends, 8)
            self.held[item.key] = item
            out.append(item)
        self._earliest = min((h.due for h in self.held.values()), default=float("inf"))
        self._release(gone)
        return out

    def next_due_in(self) -> float | None:
        """Seconds until the earliest held item is due (None: nothing to wait for)."""
        if not self.active or not self.held:
            return None
        return max(0.0, self._earliest - self.clock())
