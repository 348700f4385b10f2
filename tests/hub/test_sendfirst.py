"""The control connection's gate (hub/sendfirst.py): gateway messages wait while a phase's commands go out, then
are handled in arrival order; a wait is bounded in time and in bytes, and nothing offered is ever lost."""

from __future__ import annotations

import asyncio

from hub.sendfirst import DRAIN_SLICE, SendFirst


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.counts: dict[str, int] = {}
        self.handled = asyncio.Event()
        self.want = 0

    def dispatch(self, topic: str, payload: bytes) -> None:
        self.seen.append(topic)
        if len(self.seen) >= self.want:
            self.handled.set()

    def count(self, what: str, n: int) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    async def until(self, n: int) -> None:
        self.want = n
        if len(self.seen) < n:
            self.handled.clear()
            await asyncio.wait_for(self.handled.wait(), 30)


def gate(rec: Recorder, **kw) -> SendFirst:
    return SendFirst(rec.dispatch, on_count=rec.count, **kw)


async def test_without_a_hold_a_message_is_handled_by_the_caller_at_once():
    rec = Recorder()
    g = gate(rec)
    assert g.offer("a", b"x") is False  # the caller dispatches it itself
    assert rec.seen == [] and rec.counts == {}


async def test_held_messages_wait_for_the_release_then_go_in_arrival_order():
    rec = Recorder()
    g = gate(rec)
    release = g.hold()
    n = DRAIN_SLICE * 2 + 7  # more than one drain slice
    assert all(g.offer(f"m{i}", b"x") for i in range(n))
    await asyncio.sleep(0)  # a loop turn: nothing may run while the hold lasts
    assert rec.seen == []
    release()
    release()  # idempotent: the second call releases nothing more
    assert g.holds == 0
    # a message arriving while the queue drains goes behind it, not before it
    assert g.offer("late", b"x") is True
    await rec.until(n + 1)
    assert rec.seen == [f"m{i}" for i in range(n)] + ["late"]
    assert rec.counts == {"deferred": n + 1}
    assert g.offer("after", b"x") is False  # drained: back to handling at once


async def test_two_phases_hold_until_both_are_out():
    rec = Recorder()
    g = gate(rec)
    first, second = g.hold(), g.hold()
    assert g.offer("m", b"x")
    first()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert rec.seen == [] and g.busy
    second()
    await rec.until(1)
    assert rec.seen == ["m"]


async def test_a_full_queue_hands_over_everything_in_order_and_counts_it():
    rec = Recorder()
    g = gate(rec, max_bytes=100)
    g.hold()
    assert g.offer("a", b"x" * 60)
    assert g.offer("b", b"x" * 30)
    assert g.offer("c", b"x" * 30) is False  # would pass 100 bytes: the queue goes first, then the caller's
    assert rec.seen == ["a", "b"]
    assert rec.counts == {"deferred": 2, "overflow": 1}
    assert g.queued_bytes == 0


async def test_no_message_waits_longer_than_the_bound_even_if_a_phase_never_ends():
    rec = Recorder()
    g = gate(rec, max_wait_s=0.05)
    g.hold()  # never released (a stuck dispatch)
    assert g.offer("a", b"x")
    await rec.until(1)
    assert rec.seen == ["a"]
    assert not g.busy  # the stale hold is void: messages flow at once again
    assert g.offer("b", b"x") is False


async def test_a_phase_that_begins_as_the_bound_expires_does_not_strand_the_queue():
    """The bound voids the holds and schedules the drain; a new phase holding before the drain runs must not
    leave the waiting messages without a timer (they would wait for that phase, however long it lasts)."""
    rec = Recorder()
    now = [0.0]
    g = gate(rec, max_wait_s=1000.0, clock=lambda: now[0])  # (its first timer: 1,000 s of real time away)
    g.hold()
    assert g.offer("a", b"x")
    now[0] = 5000.0  # the gate's clock says the message has waited past the bound
    g.expire()
    assert not g.busy
    g.hold()  # a new phase, before the drain got its loop turn
    await rec.until(1)
    assert rec.seen == ["a"]


async def test_a_clean_stop_hands_over_what_waits_even_while_held():
    rec = Recorder()
    g = gate(rec, max_wait_s=3600.0)
    release = g.hold()
    assert g.offer("a", b"x") and g.offer("b", b"x")
    assert g.drain() == 2  # (hub/shutdown.py, once the connections are closed)
    assert rec.seen == ["a", "b"] and not g.busy and g.queued_bytes == 0
    release()  # the phase's own release afterwards changes nothing
    assert g.offer("c", b"x") is False
    await asyncio.sleep(0)
    assert rec.seen == ["a", "b"]
