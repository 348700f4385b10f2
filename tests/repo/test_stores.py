"""Hub state stores on both backends (real SQLite files, real PostgreSQL): users and tokens, the audit chain
(with concurrent appenders), gateway trust, alerts and device tracks, the registry, zone states and nodes."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from hub.audit import AuditLog, verify
from hub.audit.anchor import anchor_head, load_anchors
from hub.errors import ConfigError
from hub.gwtrust import TrustStore, Verifier
from hub.identity import Actor, IdentityError, Role, UserStore
from hub.identity.tokens import key_id_of, verify_token
from hub.nodes import NodeRegistry
from hub.repo import Backend
from hub.store import Store
from tests.gwident import public_b64


def test_users_tokens_and_disable(state_backend: Backend):
    users = UserStore.in_backend(state_backend)
    try:
        alice, token = users.add("alice", "operator")
        with pytest.raises(IdentityError, match="already exists"):
            users.add("alice", Role.admin)
        cred = users.credential(key_id_of(token))
        assert cred is not None and cred.name == "alice" and verify_token(cred.token_hash, token)
        _, new = users.rotate("alice")
        assert users.credential(key_id_of(token)) is None and users.credential(key_id_of(new)) is not None
        users.add("bob", "viewer")
        assert users.active_count() == 2
        assert users.disable("bob").disabled and users.active_count() == 1
        assert [u.name for u in users.list()] == ["alice", "bob"] and alice.role is Role.operator
        kid = users.get("alice").key_id
    finally:
        users.close()
    again = UserStore.in_backend(state_backend)  # another process sees the same rows
    try:
        assert again.get("alice").key_id == kid and again.get("bob").disabled
    finally:
        again.close()


def test_audit_chain_concurrent_appenders_and_anchors(state_backend: Backend):
    """Four writers on separate connections (the hub, CLI processes, other hubs): one unbroken chain."""
    logs = [AuditLog.in_backend(state_backend) for _ in range(4)]
    actor = Actor("alice", Role.operator)

    def work(log: AuditLog, n: int) -> None:
        for i in range(40):
            log.append(actor, "test.append", f"w{n}", {"i": i, "alert": "A-1" if i == 7 else None})

    threads = [threading.Thread(target=work, args=(log, n)) for n, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = logs[0]
    records = log.records()
    assert [r.seq for r in records] == list(range(1, 161)) and verify(records, [], {}).ok
    assert len(log.records(subject="A-1")) == 4 and len(log.records(actor="alice", limit=5)) == 5
    assert log.records(actor="nobody") == [] and log.head() == (160, records[-1].hash)
    assert log.last("test.append").seq == 160 and log.record_at(3).seq == 3
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    anchor = anchor_head(log, Ed25519PrivateKey.generate())
    assert load_anchors(log) == [anchor]
    for each in logs:
        each.close()


def test_gateway_trust_enroll_reset_revoke_and_change_counter(state_backend: Backend):
    pub = public_b64("gw-a")
    hub_side, cli_side = TrustStore.in_backend(state_backend), TrustStore.in_backend(state_backend)
    try:
        counts: list[tuple[str, str]] = []
        verifier = Verifier(hub_side, count=lambda ch, r: counts.append((ch, r)))
        assert verifier.gateways == {}
        enr, changed = cli_side.enroll("gw-a", pub, reason="test")
        assert changed and enr.epoch == 1 and cli_side.enroll("gw-a", pub)[1] is False
        assert verifier.refresh() and set(verifier.gateways) == {"gw-a"}  # noticed the other writer
        assert not verifier.refresh()  # nothing new
        hub_side.put_floor("gw-a", 1, {"session": 5, "ctr": 9})
        assert hub_side.floors() == {"gw-a": (1, {"session": 5, "ctr": 9})}
        with pytest.raises(ConfigError, match="not enrolled"):
            cli_side.reset("gw-zz", reason="x")
        assert cli_side.reset("gw-a", reason="stolen").epoch == 2 and hub_side.floors() == {}
        assert hub_side.get("gw-a").clear_retained
        hub_side.retained_cleared("gw-a", 2)
        assert not hub_side.get("gw-a").clear_retained
        assert cli_side.revoke("gw-a", reason="gone") and not cli_side.revoke("gw-a", reason="again")
        assert verifier.refresh() and verifier.gateways == {}
        assert [h["action"] for h in hub_side.history("gw-a")] == ["enroll", "reset", "revoke"]
    finally:
        hub_side.close()
        cli_side.close()


class _Row:
    def __init__(self, status: str, created: float, doc: dict) -> None:
        self.status, self.created, self._doc = status, created, doc

    def row(self):
        return self.status, self.created, self._doc

    def doc(self):
        return self._doc


def _store(backend: Backend) -> Store:
    return Store(backend.state_dir / "hub.sqlite") if backend.kind == "sqlite" else Store(backend.open("hub"))


def test_alerts_devices_commands_registry_and_zone_states(state_backend: Backend):
    store = _store(state_backend)
    open_doc = {"id": "A-open", "tracking": True, "zones_settled": False}
    done_doc = {"id": "A-done", "tracking": False, "zones_settled": True}
    store.put_alert("A-open", _Row("active", 10.0, open_doc))
    store.put_alert("A-done", _Row("cancelled", 5.0, done_doc))
    dev = _Row("", 0, {"gateway": "gw-a", "device": "s1", "stage": "sounding"})
    store.put_device("A-open", "gw-a", "s1", dev)
    store.put_device("A-done", "gw-a", "s1", dev)
    store.put_command("j1", "A-open", "gw-a", 1, "activate", ["s1"], 10.5, "ab" * 32)
    store.put_command("j2", "A-done", "gw-a", 1, "activate", ["s1"], 5.5, "cd" * 32)
    store.audit("alert", {"x": 1}, "A-open")
    store.put_gateway("gw-a", {"id": "gw-a", "state": "online"})
    store.put_zone_state("north", 3, {"zone": "north", "version": 3})
    assert store.dirty and store.flush() == 9 and not store.dirty
    # a second flush of the same keys replaces, never duplicates
    dev._doc = {"gateway": "gw-a", "device": "s1", "stage": "done"}
    store.put_device("A-open", "gw-a", "s1", dev)
    store.put_zone_state("north", 4, {"zone": "north", "version": 4})
    store.put_gateway("gw-a", {"id": "gw-a", "state": "offline"})
    assert store.flush() == 3
    store.close()
    store = _store(state_backend)
    try:
        assert [a["id"] for a in store.load_alerts()] == ["A-done", "A-open"]
        assert [a["id"] for a in store.load_alerts(open_only=True)] == ["A-open"]
        assert store.load_alert("A-open") == open_doc and store.load_alert("nope") is None
        assert [a["id"] for a in store.load_recent_alerts(1)] == ["A-open"]
        assert store.load_devices("A-open") == [{"gateway": "gw-a", "device": "s1", "stage": "done"}]
        assert store.load_commands("A-open", 1) == [{"jti": "j1", "gateway": "gw-a", "act": "activate",
                                                     "targets": ["s1"], "sent": 10.5, "token_sha256": "ab" * 32}]
        assert store.load_audit("A-open")[0]["x"] == 1 and store.load_audit("A-done") == []
        assert store.load_gateways() == [{"id": "gw-a", "state": "offline"}]
        assert store.load_zone_states() == {"north": {"zone": "north", "version": 4}}
        # retention: only finished alerts before the cutoff, never one still kept in memory
        assert store.delete_alerts_before(100.0, keep={"A-done"}) == 0
        assert store.delete_alerts_before(100.0) == 1
        assert store.load_alert("A-done") is None and store.load_devices("A-done") == []
        assert store.load_commands("A-done", 1) == [] and store.load_alert("A-open") is not None
    finally:
        store.close()


def test_command_rows_go_in_as_new_rows_and_a_stored_one_again_as_an_upsert(state_backend: Backend):
    """Command rows are plain inserts (PostgreSQL: COPY); a row already stored (a flush that committed but whose
    answer was lost, then queued again) is not a failure for ever: the flush writes it all again as upserts."""
    store = _store(state_backend)
    try:
        store.put_command("j1", "A-1", "gw-a", 1, "activate", ["s1"], 10.5, "ab" * 32)
        store.audit("alert", {"x": 1}, "A-1")
        assert store.flush() == 2
        store.put_command("j1", "A-1", "gw-a", 1, "activate", ["s1", "s2"], 10.5, "ab" * 32)  # the same id again
        store.put_command("j2", "A-1", "gw-b", 1, "activate", ["s1"], 10.6, "cd" * 32)
        store.audit("alert", {"x": 2}, "A-1")
        assert store.flush() == 3 and not store.dirty
        assert sorted((c["jti"], c["targets"]) for c in store.load_commands("A-1", 1)) == [
            ("j1", ["s1", "s2"]), ("j2", ["s1"])]
        assert [a["x"] for a in store.load_audit("A-1")] == [1, 2]  # the audit rows once each, in order
    finally:
        store.close()


async def test_a_phase_of_device_rows_is_written_and_rewritten_in_one_go(state_backend: Backend):
    """A city phase's device rows (thousands in one flush: on PostgreSQL through a staging table) insert, then
    replace by key, never duplicate; a small batch next to them takes the plain path. The second round goes as
    the periodic flush sends it (``flush_off_loop``: on PostgreSQL from a worker thread), ``max_devices`` at a
    time."""
    from hub.repo.db import STAGE_FROM

    store = _store(state_backend)
    n = STAGE_FROM + 50
    try:
        for stage in ("sounding", "done"):
            for i in range(n):
                store.put_device("A-1", f"gw-{i:03d}", "s1", _Row("", 0, {"i": i, "stage": stage}))
            store.put_gateway("gw-000", {"id": "gw-000", "stage": stage})
            if stage == "sounding":
                assert store.flush() == n + 1
            else:
                assert await store.flush_off_loop(devices=True, max_devices=n - 10) == n - 9
                assert store.dirty and await store.flush_off_loop(devices=True) == 10 and not store.dirty
        devices = store.load_devices("A-1")
        assert len(devices) == n and {d["stage"] for d in devices} == {"done"} and devices[7]["i"] == 7
        assert store.load_gateways() == [{"id": "gw-000", "stage": "done"}]
    finally:
        store.close()


class _WatchedEvent(threading.Event):
    """A ``threading.Event`` that says when somebody starts waiting for it while it is clear."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        if not self.is_set():
            self.waiting.set()
        return super().wait(timeout)


async def test_a_flush_off_the_loop_commits_before_any_later_flush_and_a_failed_one_is_written_again(
        state_backend: Backend):
    """``flush_off_loop`` (a dispatch step's commit; PostgreSQL: in a worker thread): a plain flush made while it
    is still in its transaction waits for it, so the newer row is the one that stays; a failed one puts its rows
    back behind what was queued since. The fence (the lease check inside the transaction) holds it open here."""
    from hub.errors import StoreError

    store = _store(state_backend)
    entered, release, refuse = threading.Event(), threading.Event(), [False]
    store._idle = idle = _WatchedEvent()  # noqa: SLF001 - the store's own "no write in flight" event, watched
    idle.set()

    def fence(tx) -> None:
        if not entered.is_set():  # only the first transaction is held open
            entered.set()
            release.wait(60)  # (a bound for a broken test only: the test releases it)
        if refuse[0]:
            raise StoreError("fenced (test)")

    try:
        store.fence = fence
        store.put_alert("A-1", _Row("active", 1.0, {"id": "A-1", "v": 1}))
        store.put_command("j1", "A-1", "gw-a", 1, "activate", ["s1"], 1.5, "ab" * 32)
        if state_backend.kind == "postgres":  # the transaction runs in a thread: a plain flush comes meanwhile
            task = asyncio.create_task(store.flush_off_loop())
            await asyncio.to_thread(entered.wait, 60)
            store.put_alert("A-1", _Row("active", 1.0, {"id": "A-1", "v": 2}))
            plain = asyncio.create_task(asyncio.to_thread(store.flush))
            await asyncio.to_thread(idle.waiting.wait, 60)  # the plain flush is waiting for the one in flight
            release.set()
            assert await plain == 1  # it waited, then wrote v2 after it (else v1 would have overwritten v2)
            assert await task == 2
        else:  # SQLite flushes on the loop
            release.set()
            assert await store.flush_off_loop() == 2
            store.put_alert("A-1", _Row("active", 1.0, {"id": "A-1", "v": 2}))
            assert store.flush() == 1
        assert store.load_alert("A-1") == {"id": "A-1", "v": 2}
        refuse[0] = True
        store.put_alert("A-1", _Row("active", 1.0, {"id": "A-1", "v": 3}))
        store.put_command("j2", "A-1", "gw-a", 1, "activate", ["s1"], 1.6, "cd" * 32)
        with pytest.raises(StoreError, match="fenced"):
            await store.flush_off_loop()
        assert store.dirty and store.load_alert("A-1")["v"] == 2
        store.put_alert("A-1", _Row("active", 1.0, {"id": "A-1", "v": 4}))  # newer than the failed v3
        refuse[0] = False
        assert store.flush() == 2  # the alert (v4, not v3) and j2
        assert store.load_alert("A-1")["v"] == 4 and {c["jti"] for c in store.load_commands("A-1", 1)} == {"j1", "j2"}
    finally:
        store.fence = None
        store.close()


async def test_replay_floors_are_taken_on_the_message_path_and_written_together(state_backend: Backend):
    """Admitting a message only takes its gateway's floor (the latest per gateway); ``Floors.save`` writes what
    is due in one transaction (on PostgreSQL from a worker thread), and a hub restarting from it refuses what
    the floors cover."""
    from contract.signed import ReplayGuard, Unverified

    hub_side, cli_side = TrustStore.in_backend(state_backend), TrustStore.in_backend(state_backend)
    try:
        for gw in ("gw-a", "gw-b"):
            cli_side.enroll(gw, public_b64(gw), reason="test")
        verifier = Verifier(hub_side, count=lambda ch, r: None, clock=lambda: 1000.0)
        assert verifier.floors.threaded == (state_backend.kind == "postgres")
        assert verifier.admit("gw-a", "state", 1, 1) and verifier.admit("gw-b", "heartbeat", 1, 1)
        assert verifier.admit("gw-a", "heartbeat", 1, 2)  # within FLOOR_EVERY_S of gw-a's birth: not taken
        assert verifier.admit("gw-a", "state", 1, 3)  # a birth always is, replacing the one due
        assert hub_side.floors() == {}  # nothing written on the message path
        assert await verifier.floors.save() == 2 and await verifier.floors.save() == 0
        floors = hub_side.floors()
        assert {g: (e, d["high"]) for g, (e, d) in floors.items()} == {"gw-a": (1, 3), "gw-b": (1, 1)}
        restored = ReplayGuard.from_floor(floors["gw-a"][1])
        with pytest.raises(Unverified):
            restored.admit(1, 3)
        restored.admit(1, 4)
    finally:
        hub_side.close()
        cli_side.close()


def test_nodes_survive_a_restart_and_a_bad_row_is_skipped(state_backend: Backend):
    store = _store(state_backend)
    from hub.models import NodeRegistration

    nodes = NodeRegistry(store.db, "1.1.0", clock=lambda: 1000.0)
    nodes.register(NodeRegistration(id="N-1", kind="noise", zone="Z1", fw="1.0.0", key_sha256="ab" * 32))
    store.db.execute("INSERT INTO nodes (id, doc) VALUES ('N-BAD', '{not json')")
    errors: list[int] = []
    again = NodeRegistry(store.db, "1.1.0", on_error=lambda: errors.append(1))
    assert [n.id for n in again.list()] == ["N-1"] and again.list()[0].outdated is True and errors == [1]
    assert again.prune(now=10**10) == 0  # a provisioned node is inventory: never pruned
    store.close()


def _noise_row(event_id: str, record_id: str, *, start: float, signature: str = "verified") -> dict:
    from hub.violations.register import SUMMARY_COLUMNS

    row = dict.fromkeys(SUMMARY_COLUMNS)
    row.update(id=event_id, record_id=record_id, gateway="gw-a", sensor="mic-1", zone="north", lat=50.4, lon=30.5,
               distance_m=7.5, start=start, end=start + 2, peak=start + 1, lafmax=92.0, lafmax_75=90.5, sel=95.0,
               **{"class": "exhaust"}, scores={"exhaust": 0.9}, suppressed=False, suppression={}, flags=[],
               candidate=True, enforceable=True, signature=signature, kid="k1", key_source="pinned",
               signature_detail="", state="candidate", record=json.dumps({"id": record_id}))
    return row


def test_noise_register_rows_reviews_keys_and_append_only_audit(state_backend: Backend):
    from hub.errors import StoreError
    from hub.violations.register import Filters, Register

    reg = Register(state_backend.state_dir / "violations.sqlite") if state_backend.kind == "sqlite" else \
        Register(state_backend.open("violations"))
    try:
        assert reg.insert(_noise_row("e1", "r1", start=100.0), now=1.0)
        assert not reg.insert(_noise_row("e1", "r9", start=100.0))  # a redelivered event id
        assert not reg.insert(_noise_row("e2", "r1", start=100.0))  # the same record under another id
        assert reg.insert(_noise_row("e3", "r3", start=200.0, signature="unverified"), now=2.0)
        assert reg.set_state("e1", "candidate", "confirmed", who="rev", action="confirm", note="loud")
        assert not reg.set_state("e1", "candidate", "dismissed", who="rev2", action="dismiss", note="late")
        assert reg.mark_verified("e3", "k1", "announced", "ok") and not reg.mark_verified("e3", "k1", "x", "y")
        assert reg.add_key("gw-a", "k1", "KEY", "pinned") and not reg.add_key("gw-a", "k1", "KEY", "pinned")
        assert reg.keys() == [("gw-a", "k1", "KEY")]
        got = reg.get("e1", record=True)
        assert got["state"] == "confirmed" and got["record"] == {"id": "r1"} and got["scores"] == {"exhaust": 0.9}
        assert got["enforceable"] is True and got["end"] == 102.0
        assert [r["id"] for r in reg.list(Filters(since=150.0))] == ["e3"]
        assert [r["id"] for r in reg.list(Filters(state="confirmed", zone="north", min_level=90.0))] == ["e1"]
        assert [a["action"] for a in reg.audit("e1")] == ["received", "confirm"]
        assert reg.counts(0, 1000, "class") == [("exhaust", "candidate", 1), ("exhaust", "confirmed", 1)]
        assert reg.flag_counts(0, 1000) == (2, 2, 0, 0)
        assert reg.top_sensors(0, 1000) == [("gw-a", "mic-1", "north", 2, 1, 90.5)]
        for sql in ("UPDATE noise_audit SET note = 'forged'", "DELETE FROM noise_audit"):
            with pytest.raises(StoreError, match="append-only"):
                reg.db.execute(sql)
        assert len(reg.audit("e1")) == 2
    finally:
        reg.close()


def test_push_subscriptions_persist_and_expire(state_backend: Backend):
    from hub.residents.channels.webpush import Subscriber, SubscriptionStore

    def open_store(**kw) -> SubscriptionStore:
        where = state_backend.state_dir / "push.sqlite" if state_backend.kind == "sqlite" else \
            state_backend.open("push")
        return SubscriptionStore(where, **kw)

    store = open_store(max_subscriptions=3)
    store.add_many([Subscriber(f"https://push.example/{i}", "p", "a", frozenset({"z1"})) for i in range(5)])
    store.add(Subscriber("https://push.example/4", "p2", "a2", frozenset({"z2"}), lang="en"))  # re-subscribed
    assert store.evicted == 2 and store.remove("https://push.example/2")
    store.close()
    again = open_store()
    assert {s.endpoint[-1] for s in again.for_zone("z1")} == {"3"}
    assert again.get("https://push.example/4") == Subscriber("https://push.example/4", "p2", "a2", frozenset({"z2"}),
                                                             lang="en")
    again._db.execute("UPDATE push_subs SET created = 0 WHERE endpoint LIKE '%3'")
    again.close()
    expired = open_store()
    assert len(expired) == 1 and expired.evicted == 1
    expired.close()


def test_a_bounded_flush_writes_the_oldest_device_rows_and_keeps_the_rest_queued(state_backend: Backend):
    store = _store(state_backend)
    try:
        store.put_alert("A", _Row("active", 1.0, {"id": "A", "tracking": True, "zones_settled": False}))
        for i in range(5):
            store.put_device("A", "gw-a", f"s{i}", _Row("", 0, {"device": f"s{i}"}))
        assert store.flush(devices=False) == 1 and store.load_devices("A") == []  # the alert row only
        assert store.flush(max_devices=2) == 2
        assert [d["device"] for d in store.load_devices("A")] == ["s0", "s1"] and store.dirty
        store.put_device("A", "gw-a", "s0", _Row("", 0, {"device": "s0", "stage": "done"}))  # queued again
        assert store.flush(max_devices=10) == 4 and not store.dirty
        assert sorted(d["device"] for d in store.load_devices("A")) == ["s0", "s1", "s2", "s3", "s4"]
        assert {"device": "s0", "stage": "done"} in store.load_devices("A")
    finally:
        store.close()
