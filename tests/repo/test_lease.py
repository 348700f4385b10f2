"""The alert-leader lease (hub/repo/lease.py) on both backends, and fencing with real processes on PostgreSQL:
a leader paused with SIGSTOP loses its lease to another holder and, continued with SIGCONT, writes nothing more
under its old token (its own check and the database's both refuse)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub.repo import Backend
from hub.repo.lease import Fenced, Lease

ROOT = Path(__file__).resolve().parents[2]


def until(pred, limit_s: float = 30.0, what: str = "condition"):
    """Poll; the limit only bounds a failing test."""
    deadline = time.monotonic() + limit_s
    while not (value := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def test_one_holder_renewal_takeover_and_fencing(state_backend: Backend):
    db = state_backend.open("hub")
    clock = [0.0]
    a = Lease(db, "alert", "hub-a", ttl_s=1.0, mono=lambda: clock[0])
    b = Lease(db, "alert", "hub-b", ttl_s=1.0)
    try:
        assert a.current() is None and a.acquire() and a.token == 1 and a.valid()
        assert not b.acquire() and b.token is None and not b.valid()  # held: the other one waits
        assert a.acquire() and a.token == 1  # a renewal keeps the term
        with db.transaction() as tx:
            a.check(tx)
        clock[0] += 0.8  # ttl - margin after it asked: the holder stops trusting its lease on its own
        assert not a.valid()
        until(b.acquire, what="the lease to expire for hub-b")
        assert b.token == 2 and b.valid() and a.current()["holder"] == "hub-b"
        assert not a.acquire() and not a.valid()
        with pytest.raises(Fenced), db.transaction() as tx:
            a.check(tx)
        b.release()  # a clean shutdown hands over at once
        assert a.acquire() and a.token == 3 and not b.valid()
        with pytest.raises(Fenced), db.transaction() as tx:
            b.check(tx)
    finally:
        db.close()


CHILD = """
import os, signal, sys, time
from hub.errors import StoreError
from hub.repo import Backend
from hub.repo.lease import Fenced, Lease
db = Backend.postgres(sys.argv[1], password=os.environ["PGTEST_PASSWORD"], idle_tx_timeout_s=1.0).open("hub")
pause_in_tx = sys.argv[2] == "pause-in-transaction"
n = 0
lease = Lease(db, "alert", "hub-a", ttl_s=1.0)
while not lease.acquire():
    time.sleep(0.05)
print("leader", lease.token, flush=True)
while True:
    if lease.valid() or lease.acquire():
        try:
            with db.transaction() as tx:
                lease.check(tx)
                tx.execute("INSERT INTO sent (token, holder) VALUES (?, ?)", (lease.token, "hub-a"))
                n += 1
                if pause_in_tx and n == 5:  # stopped between the fence check and the commit
                    os.kill(os.getpid(), signal.SIGSTOP)
        except Fenced:
            print("fenced by the database", flush=True)
        except StoreError as exc:
            print("write refused:", exc, flush=True)
    else:
        print("fenced", flush=True)
    time.sleep(0.02)
"""


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.parametrize("where", ["between-writes", "pause-in-transaction"])
def test_a_paused_leader_sends_nothing_after_losing_its_lease(postgres_server, tmp_path, where):
    """Paused between two writes, or inside a write after its fence check (the server aborts that transaction
    when it idles past idle_tx_timeout_s, which also lets the takeover through)."""
    url = postgres_server.database()
    backend = Backend.postgres(url, password=postgres_server.password)
    backend.migrate()
    db = backend.open("hub")
    db.execute("CREATE TABLE sent (id BIGSERIAL PRIMARY KEY, token BIGINT NOT NULL, holder TEXT NOT NULL)")
    out = tmp_path / "child.log"
    with open(out, "wb") as fh:
        child = subprocess.Popen([sys.executable, "-c", CHILD, url, where], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                 env={**os.environ, "PGTEST_PASSWORD": postgres_server.password})
    try:
        if where == "pause-in-transaction":
            until(lambda: stopped(child.pid), what="the leader to stop itself mid-transaction")
        else:
            until(lambda: db.query("SELECT count(*) FROM sent")[0][0] >= 5, what="the leader to send")
            child.send_signal(signal.SIGSTOP)
            until(lambda: stopped(child.pid), what="SIGSTOP")
        sent_by_a = db.query("SELECT count(*) FROM sent")[0][0]
        b = Lease(db, "alert", "hub-b", ttl_s=1.0)
        until(b.acquire, what="hub-b to take over")
        assert b.token == 2
        with db.transaction() as tx:
            b.check(tx)
            tx.execute("INSERT INTO sent (token, holder) VALUES (?, ?)", (b.token, "hub-b"))
        child.send_signal(signal.SIGCONT)
        until(lambda: "fenced" in out.read_text() or "refused" in out.read_text(),
              what="the old leader to see itself fenced")
        for _ in range(10):  # keep hub-b's lease alive while the old leader runs on
            assert b.acquire() and b.token == 2
            time.sleep(0.05)
        rows = db.query("SELECT token, holder FROM sent ORDER BY id")
        assert rows[:sent_by_a] == [(1, "hub-a")] * sent_by_a
        assert rows[sent_by_a:] == [(2, "hub-b")]  # nothing from the paused leader after it lost the lease
        assert "leader 1" in out.read_text()
        if where == "pause-in-transaction":  # its 5th write never committed: the server aborted it
            assert sent_by_a == 4 and "write refused" in out.read_text()
    finally:
        child.send_signal(signal.SIGCONT)
        child.kill()
        child.wait(10)
        db.close()


async def test_the_leader_keeps_its_lease_through_a_loop_stall_but_not_a_wedged_loop(state_backend: Backend,
                                                                                        monkeypatch):
    """The lease is renewed from a thread: an event loop blocked for longer than the lease (a city's dispatch on a
    starved machine) keeps it, so no second hub takes over; a loop blocked for LOOP_STALL_TTLS leases lets it
    expire, another hub takes it, and the stalled one learns it lost as soon as its loop runs again."""
    import asyncio

    from hub import leader as leader_mod
    from hub.leader import Leadership

    monkeypatch.setattr(leader_mod, "LOOP_STALL_TTLS", 3)
    db = state_backend.open("hub")
    lead = Leadership(db, 1.5, holder="hub-a")
    other = Lease(db, "hub", "hub-b", ttl_s=1.5)
    try:
        await lead.take()
        keeper = asyncio.create_task(lead.keep())
        await asyncio.sleep(0.3)
        time.sleep(3.5)  # noqa: ASYNC251 - the loop blocked for over two leases: the thread renews meanwhile
        assert not other.acquire() and lead.lease.valid() and not lead.lost.is_set()
        time.sleep(6.5)  # noqa: ASYNC251 - blocked past LOOP_STALL_TTLS leases: no renewal, the lease expires
        assert other.acquire() and other.token == 2
        await asyncio.wait_for(lead.lost.wait(), 10)  # the loop runs again: the thread's renewal failed
        assert not lead.lease.valid()
        keeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await keeper
    finally:
        db.close()
