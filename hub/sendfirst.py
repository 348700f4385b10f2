"""Commands before bookkeeping: while an alert phase's commands are going out, the gateway messages that arrive
on the hub's control connection (the first steps' acks, heartbeats, births) wait in a bounded queue, and are
handled in arrival order as soon as the phase's last command is on the wire.

Why (measured in ``python -m bench.city``, docs/benchmarks.md): in a city of 2,000 gateways the gateways of a
phase's first steps ack while its later steps are still being signed and sent, and each of those messages costs
the leader's event loop an Ed25519 verification of the gateway's seal plus the bookkeeping, on the same loop that
lands the steps. That put hundreds of milliseconds of acks in the middle of the dispatch. Nothing in a dispatch
waits for an incoming message, and the acks lose nothing by waiting: they are in memory exactly as they would be
while a handler runs (the control connection's PUBACK goes out when the callback returns, as before), and a hub
killed meanwhile re-sends the commands its database says are unconfirmed, which the gateways ack again.

Bounds, so a waiting message is never starved and a flood cannot grow the hub: a message waits at most
``max_wait_s`` (then everything queued is handled, dispatch or not), and at most ``max_bytes`` of payload wait
(past that a message is handled at once, as without this gate). Holds are counted like the collector's
(hub/alerts/signer.py ``GcPause``): one per phase in flight, released when its last command is out or its task
ends; releasing twice is harmless.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

MAX_WAIT_S = 1.0  # the longest a gateway message waits for a dispatch
MAX_BYTES = 8 * 1024 * 1024  # payload bytes waiting at most (a 2,000-gateway phase's first acks are ~1 MB)
DRAIN_SLICE = 256  # messages handled per loop iteration when the queue is drained (acks and API keep moving)


class SendFirst:
    """The gate between the control connection and the dispatcher. All methods run on the event loop."""

    def __init__(self, dispatch: Callable[[str, bytes], None], *, max_wait_s: float = MAX_WAIT_S,
                 max_bytes: int = MAX_BYTES, clock: Callable[[], float] = time.monotonic,
                 on_count: Callable[[str, int], None] | None = None) -> None:
        self.dispatch = dispatch
        self.max_wait_s = max_wait_s
        self.max_bytes = max_bytes
        self.clock = clock
        self.on_count = on_count  # (what, n): "deferred" / "overflow" (hub metrics)
        self.holds = 0
        self._epoch = 0
        self.queue: deque[tuple[float, str, bytes]] = deque()
        self.queued_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._draining = False
        self.deferred = 0  # messages that waited (all time)
        self.overflow = 0  # messages handled at once because the queue was full

    # ------------------------------------------------------------ holds (the alert engine)
    def hold(self) -> Callable[..., None]:
        """Hold incoming messages back; returns the release (idempotent)."""
        self.holds += 1
        epoch, done = self._epoch, [False]

        def release(*_: object) -> None:
            if not done[0]:
                done[0] = True
                if epoch == self._epoch:
                    self.holds -= 1
                    if self.holds == 0:
                        self._schedule_drain()
        return release

    @property
    def busy(self) -> bool:
        return self.holds > 0

    # ------------------------------------------------------------ messages (the control connection)
    def offer(self, topic: str, payload: bytes) -> bool:
        """True: the message waits here (handled later, in order); False: handle it now."""
        if not self.holds and not self.queue:
            return False
        if self.queued_bytes + len(payload) > self.max_bytes:
            self.overflow += 1
            self._count("overflow", 1)
            self._drain_all()  # the oldest first: order is kept, then this one is handled by the caller
            return False
        now = self.clock()
        self.queue.append((now, topic, payload))
        self.queued_bytes += len(payload)
        self.deferred += 1
        self._count("deferred", 1)
        if self._timer is None:  # whenever something waits, a timer bounds the wait
            self._arm_timer()
        if not self.holds:
            self._schedule_drain()
        return True

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # (no loop: a sync caller; nothing can wait then)
            self._drain_all()
            return
        wait = max(0.0, self.queue[0][0] + self.max_wait_s - self.clock()) if self.queue else self.max_wait_s
        self._timer = loop.call_later(wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.expire()

    def expire(self) -> None:
        """If the oldest waiting message has waited ``max_wait_s``: every hold is void (a dispatch that outlasts
        the bound is a slow one, and messages flow again) and the queue drains. Run by the gate's own timer."""
        if not self.queue:
            return
        if self.clock() - self.queue[0][0] >= self.max_wait_s:
            if self.holds:
                self._epoch += 1
                self.holds = 0
            self._schedule_drain()
        if self._timer is None:
            self._arm_timer()

    def _schedule_drain(self) -> None:
        if self._draining or not self.queue:
            return
        self._draining = True
        try:
            asyncio.get_running_loop().call_soon(self._drain_slice)
        except RuntimeError:
            self._draining = False
            self._drain_all()

    def _drain_slice(self) -> None:
        self._draining = False
        if self.holds:  # a new phase began: its commands first (the timer still bounds the wait)
            if self.queue:
                self._arm_timer()  # (re-armed for the oldest message's own deadline)
            return
        for _ in range(min(DRAIN_SLICE, len(self.queue))):
            self._handle_one()
        if self.queue:
            self._schedule_drain()
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def drain(self) -> int:
        """Handle everything waiting now, holds or not (a clean stop, once no more messages can come: their
        PUBACKs are already sent, so they must reach the engine before its state is flushed). Returns how many."""
        n = len(self.queue)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._epoch += 1
        self.holds = 0
        self._drain_all()
        return n

    def _drain_all(self) -> None:
        while self.queue:
            self._handle_one()

    def _handle_one(self) -> None:
        _, topic, payload = self.queue.popleft()
        self.queued_bytes -= len(payload)
        self.dispatch(topic, payload)  # Dispatcher.dispatch never raises (it counts and logs)

    def _count(self, what: str, n: int) -> None:
        if self.on_count is not None:
            self.on_count(what, n)
