"""The gateway outbox on real SQLite files: lanes, acks, bounds, drop policy, kill -9, token bucket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from gateway.outbox import Lane, Outbox, OutboxError, StreamPolicy, TokenBucket


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock():
    return Clock()


def payload(n: int, size: int = 100) -> bytes:
    return f"{n:08d}".encode().ljust(size, b".")


TOPIC = "dozor/v1/gw/gw-1/telemetry"  # 26 bytes


def test_put_batch_ack_priority_first(tmp_path, clock):
    with Outbox(tmp_path / "ob.db", clock=clock) as ob:
        t1 = ob.put("telemetry", TOPIC, b"t1")
        t2 = ob.put("telemetry", TOPIC, b"t2")
        a1 = ob.put("ack", "dozor/v1/gw/gw-1/ack", b"a1", lane=Lane.PRIORITY)
        e1 = ob.put("event", "dozor/v1/gw/gw-1/event", b"e1", lane=Lane.PRIORITY)
        items = ob.batch()
        assert [i.id for i in items] == [a1, e1, t1, t2]
        assert ob.batch() == []  # all in flight
        assert ob.ack([a1, t1]) == 2
        ob.release()  # connection dropped: the rest goes again
        assert [i.payload for i in ob.batch()] == [b"e1", b"t2"]
        assert ob.depth == 2 and ob.ack([e1, t2, 9999]) == 2 and ob.depth == 0 and ob.bytes == 0


def test_batch_limits_bytes_items_and_always_one(tmp_path, clock):
    with Outbox(tmp_path / "ob.db", clock=clock) as ob:
        ids = [ob.put("telemetry", TOPIC, payload(i)) for i in range(10)]  # 126 bytes each
        assert [i.id for i in ob.batch(limit_bytes=300, limit_items=100)] == ids[:2]
        assert [i.id for i in ob.batch(limit_bytes=10_000, limit_items=3)] == ids[2:5]
        assert [i.id for i in ob.batch(limit_bytes=1, limit_items=3)] == ids[5:6]
        assert [i.id for i in ob.batch(lanes=[Lane.PRIORITY])] == []


def test_byte_bound_drops_telemetry_oldest_first_and_never_events_before_telemetry(tmp_path, clock):
    # every item is 126 bytes; the bound holds 10 items
    with Outbox(tmp_path / "ob.db", max_bytes=1260, clock=clock) as ob:
        for i in range(5):
            ob.put("event", TOPIC, payload(1000 + i), lane=Lane.PRIORITY)
        for i in range(20):
            ob.put("telemetry", TOPIC, payload(i))
        kept = [int(i.payload[:8]) for i in ob.batch(limit_items=100)]
        assert kept == [1000, 1001, 1002, 1003, 1004, 15, 16, 17, 18, 19]
        assert ob.dropped() == {("telemetry", "overflow"): 15}
        assert ob.bytes == 1260 and ob.depth == 10
        ob.release()
        # only events and acks left to evict: events go first, acks last
        ob.ack([i.id for i in ob.batch(limit_items=100) if i.stream == "telemetry"])
        ob.release()
        for i in range(5):
            ob.put("ack", TOPIC, payload(2000 + i), lane=Lane.PRIORITY)
        for i in range(3):
            ob.put("ack", TOPIC, payload(2005 + i), lane=Lane.PRIORITY)
        ob.release()
        kept = sorted(int(i.payload[:8]) for i in ob.batch(limit_items=100))
        assert kept == [1003, 1004] + list(range(2000, 2008))
        assert ob.dropped() == {("telemetry", "overflow"): 15, ("event", "overflow"): 3}
        assert ob.stats().dropped == 18


def test_new_telemetry_into_a_full_outbox_of_events_drops_itself(tmp_path, clock):
    with Outbox(tmp_path / "ob.db", max_bytes=1260, clock=clock) as ob:
        for i in range(10):
            ob.put("event", TOPIC, payload(i))
        ob.put("telemetry", TOPIC, payload(99))
        assert sorted(int(i.payload[:8]) for i in ob.batch(limit_items=100)) == list(range(10))
        assert ob.dropped() == {("telemetry", "overflow"): 1}


def test_in_flight_items_are_not_evicted(tmp_path, clock):
    with Outbox(tmp_path / "ob.db", max_bytes=1260, clock=clock) as ob:
        for i in range(10):
            ob.put("telemetry", TOPIC, payload(i))
        inflight = ob.batch(limit_items=3)
        for i in range(10, 13):
            ob.put("telemetry", TOPIC, payload(i))
        ob.release()
        kept = [int(i.payload[:8]) for i in ob.batch(limit_items=100)]
        assert kept == [0, 1, 2, 6, 7, 8, 9, 10, 11, 12]
        assert [int(i.payload[:8]) for i in inflight] == [0, 1, 2]
        assert ob.dropped() == {("telemetry", "overflow"): 3}


def test_age_bound_per_stream(tmp_path, clock):
    pol = {"telemetry": StreamPolicy(0, 60.0), "event": StreamPolicy(1, 600.0), "ack": StreamPolicy(2, None)}
    with Outbox(tmp_path / "ob.db", policies=pol, clock=clock) as ob:
        ob.put("telemetry", TOPIC, b"old-t")
        ob.put("event", TOPIC, b"old-e")
        ob.put("ack", TOPIC, b"old-a")
        clock.t += 61
        assert ob.stats().oldest_age_s == 61
        ob.put("telemetry", TOPIC, b"new-t")
        assert sorted(i.payload for i in ob.batch()) == [b"new-t", b"old-a", b"old-e"]
        clock.t += 600
        ob.expire()
        assert ob.dropped() == {("telemetry", "age"): 2, ("event", "age"): 1}
        assert ob.depth == 1


def test_bad_puts_are_refused_and_counted(tmp_path, clock):
    with Outbox(tmp_path / "ob.db", max_bytes=1000, clock=clock) as ob:
        with pytest.raises(OutboxError, match="unknown outbox stream"):
            ob.put("gossip", TOPIC, b"x")
        with pytest.raises(OutboxError, match="exceeds"):
            ob.put("telemetry", TOPIC, bytes(2000))
        assert ob.dropped() == {("telemetry", "too_large"): 1}
        assert ob.depth == 0


def test_single_writer_lock_and_persistence(tmp_path, clock):
    path = tmp_path / "ob.db"
    ob = Outbox(path, max_bytes=1260, clock=clock)
    with pytest.raises(OutboxError, match="already open"):
        Outbox(path)
    for i in range(12):
        ob.put("telemetry", TOPIC, payload(i))
    ob.close()
    with Outbox(path, max_bytes=1260, clock=clock) as again:
        assert again.depth == 10 and again.bytes == 1260
        assert again.dropped() == {("telemetry", "overflow"): 2}
        assert again.stats().model_dump() == {"depth": 10, "bytes": 1260, "oldest_age_s": 0.0, "dropped": 2}


CHILD = textwrap.dedent("""
    import sys
    from gateway.outbox import Lane, Outbox
    ob = Outbox(sys.argv[1], synchronous="FULL")
    i = 0
    while True:
        lane = Lane.PRIORITY if i % 5 == 0 else Lane.NORMAL
        item_id = ob.put("event" if lane else "telemetry", "t", b"%d" % i, lane=lane)
        print("p", i, flush=True)
        if i % 3 == 0:
            ob.ack([item_id])
            print("a", i, flush=True)
        i += 1
""")


def test_kill_dash_nine_mid_stream_loses_nothing_that_was_accepted(tmp_path):
    path = tmp_path / "ob.db"
    for _round in range(2):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True,
                                cwd=os.getcwd())
        put, acked = [], []
        assert proc.stdout is not None
        for line in proc.stdout:
            op, n = line.split()
            (put if op == "p" else acked).append(int(n))
            if len(put) >= 150:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for line in proc.stdout:  # what the child confirmed before it died
            op, n = line.split()
            (put if op == "p" else acked).append(int(n))
        proc.stdout.close()
        last = put[-1]
        assert len(put) >= 150
        with Outbox(path) as ob:
            left = {int(i.payload) for i in ob.batch(limit_items=10_000, limit_bytes=10**9)}
            assert ob.dropped() == {}
            assert ob.depth == len(left)
            # an op that had not confirmed may or may not have landed: the put of last+1, or the ack of last
            must = set(put) - set(acked) - {last}
            may = {last, last + 1}
            assert must and must <= left, sorted(must - left)[:10]
            assert left <= must | may
            # start the next round from an empty outbox
            ob.release()
            ob.ack([i.id for i in ob.batch(limit_items=10_000, limit_bytes=10**9)])
            assert ob.depth == 0


def test_token_bucket_paces_and_caps_burst():
    clock = Clock(0.0)
    tb = TokenBucket(rate=10, burst=5, clock=clock)
    assert [tb.take() for _ in range(6)] == [True] * 5 + [False]
    assert tb.wait_s() == pytest.approx(0.1)
    clock.t += 0.25
    assert tb.available() == 2
    clock.t += 100
    assert tb.available() == 5
    assert tb.take(5) and not tb.take(0.5)
    assert tb.wait_s(50) == pytest.approx(0.5)  # never more than a burst's worth
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)


def test_drain_after_reconnect_is_paced_but_priority_is_not(tmp_path, clock):
    """The telemetry drain: priority always, the normal lane only as tokens allow. (Acks are in the priority lane
    too, but the uplink drains those itself: ``drain_batch`` leaves them out, see the next assertion.)"""
    bucket_clock = Clock(0.0)
    bucket = TokenBucket(rate=16, burst=10, clock=bucket_clock)
    with Outbox(tmp_path / "ob.db", clock=clock) as ob:
        for i in range(100):
            ob.put("telemetry", TOPIC, payload(i))
        for i in range(5):
            ob.put("event", TOPIC, payload(500 + i), lane=Lane.PRIORITY)
        ob.put("ack", TOPIC, b"uplink's", lane=Lane.PRIORITY)
        sent_per_tick = []
        for tick in range(10):  # 10 ticks of 0.125 s: 2 tokens each
            if tick == 5:
                ob.put("event", TOPIC, b"urgent", lane=Lane.PRIORITY)
            items = ob.drain_batch(bucket)
            assert all(i.stream != "ack" for i in items)
            ob.ack([i.id for i in items])
            sent_per_tick.append((sum(i.lane is Lane.PRIORITY for i in items),
                                  sum(i.lane is Lane.NORMAL for i in items)))
            bucket_clock.t += 0.125
        assert sent_per_tick == [(5, 10)] + [(0, 2)] * 4 + [(1, 2)] + [(0, 2)] * 4
        assert ob.depth == 100 - 10 - 2 * 9 + 1  # + the ack left for the uplink


def test_age_expiry_scans_past_many_young_items(tmp_path, clock):
    pol = {"telemetry": StreamPolicy(0, 100.0), "event": StreamPolicy(1, None), "ack": StreamPolicy(2, None)}
    with Outbox(tmp_path / "ob.db", policies=pol, clock=clock, expire_every_s=1e9) as ob:
        ob.put_many([("telemetry", TOPIC, payload(i), Lane.NORMAL) for i in range(600)])
        clock.t += 50
        ob.put_many([("telemetry", TOPIC, payload(i), Lane.NORMAL) for i in range(600, 1000)])
        clock.t += 60  # the first 600 are 110 s old, the rest 60 s
        ob.expire()
        assert ob.depth == 400 and ob.dropped() == {("telemetry", "age"): 600}


def test_worker_threads_share_one_outbox_safely(tmp_path, clock):
    import threading

    with Outbox(tmp_path / "ob.db", clock=clock, synchronous="NORMAL") as ob:
        def producer(k: int) -> None:
            for i in range(50):
                ob.put("telemetry", TOPIC, payload(k * 1000 + i))

        threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = sorted(int(i.payload[:8]) for i in ob.batch(limit_items=1000, limit_bytes=10**9))
        assert got == sorted(k * 1000 + i for k in range(4) for i in range(50))
        assert ob.depth == 200 and ob.bytes == 200 * 126
