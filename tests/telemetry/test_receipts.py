"""Telemetry receipts (hub -> gateway): the codec refuses anything malformed, the hub gathers committed keys into
one receipt per gateway and session, and the gateway keeps what it published until the receipt, re-sending what
is overdue (and giving up after its re-sends). The end-to-end case, with a real broker that acknowledges and loses,
is ``tests/chaos/test_link_faults.py`` (fault ``ack_and_lose``)."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import topics
from contract.codecs import receipt as codec
from contract.errors import MalformedMessage
from gateway.counters import Counters
from gateway.outbox import Lane, Outbox
from gateway.receipts import ReceiptWindow, event_key, key_from_text, key_text
from hub.ingest.receipts import Receipts

LOG = logging.getLogger("test")

receipts = st.builds(codec.Receipt, st.integers(0, 2**63 - 1),
                     st.lists(st.integers(0, 2**63 - 1), max_size=50).map(tuple),
                     st.lists(st.text(min_size=1, max_size=codec.MAX_EVENT_ID), max_size=20).map(tuple))


@given(receipts)
def test_a_receipt_round_trips(r):
    assert codec.decode(codec.encode(r)) == r


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(["v", "session", "seqs", "events", "x"]), c,
                                                        max_size=5), max_leaves=12).map(lambda d: json.dumps(d).encode())))
def test_decode_refuses_junk_with_one_error_type(payload):
    try:
        r = codec.decode(payload)
    except MalformedMessage as exc:
        assert exc.reason == "bad_receipt"
    else:  # whatever passes is a well-formed receipt
        assert codec.decode(codec.encode(r)) == r


@pytest.mark.parametrize("doc", [
    {"v": 1, "session": -1, "seqs": []}, {"v": 1, "session": True, "seqs": []}, {"v": 2, "session": 1},
    {"v": 1, "session": 1, "seqs": [1.5]}, {"v": 1, "session": 1, "seqs": [False]},
    {"v": 1, "session": 1, "events": [""]}, {"v": 1, "session": 1, "events": ["x" * 129]},
    {"v": 1, "session": 1, "seqs": list(range(codec.MAX_SEQS + 1))}])
def test_decode_refuses_out_of_contract_fields(doc):
    with pytest.raises(MalformedMessage):
        codec.decode(json.dumps(doc).encode())


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def window(**kw) -> tuple[ReceiptWindow, Counters, Clock]:
    counters, clock = Counters(), Clock()
    return ReceiptWindow(counters, LOG, clock=clock, **kw), counters, clock


def test_what_the_hub_receipts_is_released_and_nothing_is_resent():
    w, c, clock = window(timeout_s=10)
    w.hold(("t", 7, 1), "tel", b"one")
    w.hold(("t", 7, 2), "tel", b"two")
    w.hold(("e", "ev-1"), "evt", b'{"id":"ev-1"}')
    w.on_payload(codec.encode(codec.Receipt(7, (1, 2), ("ev-1",))))
    clock.t = 100
    assert w.held == {} and w.due() == []
    assert c.get("telemetry_receipted") == 3 and c.get("telemetry_receipts") == 1


def test_an_overdue_item_is_resent_with_backoff_then_given_up_while_the_hub_answers_others():
    w, c, clock = window(timeout_s=10, max_resends=2)
    w.on_payload(codec.encode(codec.Receipt(7)))  # the hub sends receipts
    w.hold(("t", 7, 1), "tel", b"one")
    w.hold(("t", 7, 2), "tel", b"two")
    w.on_payload(codec.encode(codec.Receipt(7, (2,))))
    clock.t = 9.9
    assert w.due() == []
    clock.t = 10
    assert [(h.key, h.payload) for h in w.due()] == [(("t", 7, 1), b"one")]
    clock.t = 29.9  # second wait is 2x the timeout
    assert w.due() == []
    clock.t = 30
    assert [h.resends for h in w.due()] == [2]
    clock.t = 100  # the hub is up: it receipts another batch, never this one
    w.hold(("t", 7, 3), "tel", b"three")
    w.on_payload(codec.encode(codec.Receipt(7, (3,))))
    clock.t = 1000
    assert w.due() == [] and w.held == {}
    assert c.get("telemetry_receipt_gave_up") == 1


def test_while_no_receipt_comes_at_all_items_are_kept_and_resent():
    w, c, clock = window(timeout_s=10, max_resends=2)
    w.on_payload(codec.encode(codec.Receipt(7)))
    w.hold(("t", 7, 1), "tel", b"one")
    resent = 0
    for t in range(10, 2000, 10):  # the hub is down for half an hour
        clock.t = t
        resent += len(w.due())
    assert ("t", 7, 1) in w.held and c.get("telemetry_receipt_gave_up") == 0
    assert 20 <= resent <= 2000 / 80 + 3  # every 8 x timeout once backed off
    w.on_payload(codec.encode(codec.Receipt(7, (1,))))
    assert w.held == {}


def test_a_receipt_of_another_session_releases_nothing():
    w, _, clock = window(timeout_s=1)
    w.hold(("t", 7, 1), "tel", b"one")
    w.on_payload(codec.encode(codec.Receipt(8, (1,))))
    clock.t = 1
    assert [h.key for h in w.due()] == [("t", 7, 1)]


def test_nothing_is_resent_to_a_hub_that_never_sent_a_receipt():
    w, c, clock = window(timeout_s=1, max_held=3)
    for i in range(5):
        w.hold(("t", 1, i), "tel", b"x")
    clock.t = 100
    assert w.due() == [] and len(w.held) == 3
    assert c.get("telemetry_receipt_unused") == 2


def test_a_malformed_receipt_is_counted_and_changes_nothing():
    w, c, clock = window(timeout_s=1)
    w.on_payload(codec.encode(codec.Receipt(1)))
    w.hold(("t", 1, 1), "tel", b"x")
    for junk in (b"", b"{", b'{"v":1,"session":"1","seqs":[1]}', b"\xff" * 10):
        w.on_payload(junk)
    assert c.get("telemetry_receipt_bad") == 4 and ("t", 1, 1) in w.held


def test_event_keys_come_from_the_stored_payload():
    assert event_key(b'{"v":1,"id":"ev-9","kind":"x"}') == ("e", "ev-9")
    assert event_key(b"not json") is None and event_key(b"[1]") is None and event_key(b'{"id":""}') is None


def test_the_hub_sends_one_receipt_per_gateway_and_session_on_the_tenant_topic():
    sent: list[tuple[str, bytes, int]] = []
    r = Receipts(lambda t, p, q: sent.append((t, p, q)) or True, topics=topics.Topics("odesa"))
    r.add(["t:gw-1:7:1", "t:gw-1:7:2", "t:gw-1:8:0", "e:gw-1:ev-1", "t:gw-2:3:9", None, "x:junk", "t:gw-3:a:1"])
    assert r.flush() == 3 and r.flush() == 0
    got = sorted(((t, codec.decode(p), q) for t, p, q in sent), key=lambda x: (x[0], x[1].session))
    assert got == [("dozor/v1/odesa/gw/gw-1/receipt", codec.Receipt(7, (1, 2), ("ev-1",)), 0),
                   ("dozor/v1/odesa/gw/gw-1/receipt", codec.Receipt(8, (0,)), 0),
                   ("dozor/v1/odesa/gw/gw-2/receipt", codec.Receipt(3, (9,)), 0)]


def test_a_large_backlog_is_receipted_in_chunks_within_the_contract():
    sent: list[bytes] = []
    r = Receipts(lambda t, p, q: sent.append(p) or True)
    n = codec.MAX_SEQS * 2 + 5
    r.add([f"t:gw-1:1:{i}" for i in range(n)] + [f"e:gw-1:ev-{i}" for i in range(codec.MAX_EVENTS + 1)])
    assert r.flush() == 3
    bodies = [codec.decode(p) for p in sent]
    assert sum(len(b.seqs) for b in bodies) == n and sum(len(b.events) for b in bodies) == codec.MAX_EVENTS + 1


def test_a_failing_publish_is_counted_not_raised():
    def boom(*_):
        raise RuntimeError("not connected")
    r = Receipts(boom)
    r.add(["t:gw-1:1:1"])
    assert r.flush() == 0 and r.counters["receipts_unsent"] == 1


# ---- held messages survive a gateway restart (the outbox's `held` table) --------------------------------------

keys = st.one_of(st.tuples(st.just("t"), st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1)),
                 st.tuples(st.just("e"), st.text(min_size=1, max_size=codec.MAX_EVENT_ID)))


@given(keys)
def test_a_key_survives_its_text_form(key):
    assert key_from_text(key_text(key)) == key


@pytest.mark.parametrize("text", ["", "t", "t/1", "t/x/1", "t/1/-2", "e/", "x/1/2", "t/1/2/3"])
def test_a_key_text_that_is_no_key_is_none(text):
    assert key_from_text(text) is None


def test_the_window_tells_the_store_what_it_no_longer_holds():
    released: list[str] = []
    w, c, clock = window(timeout_s=10, max_resends=1, max_held=3, on_release=released.extend)
    w.on_payload(codec.encode(codec.Receipt(7)))
    for seq in range(4):  # the fourth pushes the first out
        w.hold(("t", 7, seq), "tel", b"x")
    assert released == ["t/7/0"]
    w.on_payload(codec.encode(codec.Receipt(7, (1,))))
    assert released == ["t/7/0", "t/7/1"]
    clock.t = 10
    assert len(w.due()) == 2  # re-sent once each
    clock.t = 11
    w.hold(("t", 7, 9), "tel", b"y")
    w.on_payload(codec.encode(codec.Receipt(7, (9,))))  # the hub answers others: the two are given up when due
    clock.t = 100
    assert w.due() == [] and sorted(released[3:]) == ["t/7/2", "t/7/3"]
    assert c.get("telemetry_receipt_gave_up") == 2


def test_a_restored_window_resends_once_the_hub_says_it_receipts():
    released: list[str] = []
    w, c, clock = window(timeout_s=10, on_release=released.extend)
    w.restore([("t/7/1", "tel", b"one"), ("e/ev-1", "evt", b'{"id":"ev-1"}'), ("junk", "tel", b"?")])
    assert set(w.held) == {("t", 7, 1), ("e", "ev-1")} and released == ["junk"]
    assert c.get("telemetry_receipt_restored") == 2 and c.get("telemetry_receipt_bad_keys") == 1
    clock.t = 10
    assert w.due() == []  # no receipt yet: the hub may not send them
    w.on_payload(codec.encode(codec.Receipt(0)))  # the hub's hello to a gateway just born
    assert [h.payload for h in w.due()] == [b"one", b'{"id":"ev-1"}']


def test_a_store_that_fails_is_counted_and_the_receipt_still_releases():
    def broken(_keys):
        raise OSError("disk full")

    w, c, _ = window(timeout_s=10, on_release=broken)
    w.hold(("t", 7, 1), "tel", b"x")
    w.on_payload(codec.encode(codec.Receipt(7, (1,))))
    assert w.held == {} and c.get("telemetry_receipt_store_errors") == 1


def test_the_outbox_keeps_held_messages_across_a_reopen(tmp_path):
    with Outbox(tmp_path / "outbox.db") as box:
        ids = box.put_many([("telemetry", "tel", b"r1", Lane.NORMAL), ("telemetry", "tel", b"r2", Lane.NORMAL)])
        assert box.ack(ids, durable=False, held=[("t/7/1", "tel", b"batch-1"), ("e/ev-1", "evt", b"{}")]) == 2
        box.ack((), durable=False, held=[("t/7/2", "tel", b"batch-2")])
        box.release_held(["t/7/1"])
    with Outbox(tmp_path / "outbox.db") as box:
        assert box.depth == 0
        assert box.held() == [("e/ev-1", "evt", b"{}"), ("t/7/2", "tel", b"batch-2")]


def test_the_hub_says_hello_to_a_gateway_just_born_once_and_not_beside_a_real_receipt():
    sent: list[tuple[str, bytes, int]] = []
    r = Receipts(lambda t, p, q: sent.append((t, p, q)) or True)
    r.hello("gw-a")
    r.hello("gw-a")
    r.hello("gw-b")
    r.add(["t:gw-b:5:1"])
    assert r.flush() == 2
    bodies = {topic.split("/")[3]: codec.decode(payload) for topic, payload, _ in sent}
    assert bodies == {"gw-a": codec.Receipt(0, (), ()), "gw-b": codec.Receipt(5, (1,))}
    assert r.flush() == 0


def test_a_hello_that_cannot_go_yet_is_tried_again_at_the_next_flush():
    """A starting hub sees retained births on its main connection before its ingest connection is up."""
    sent: list[str] = []
    up = False
    r = Receipts(lambda t, p, q: up and (sent.append(t) or True))
    r.hello("gw-a")
    assert r.flush() == 0 and sent == []
    up = True
    assert r.flush() == 1 and sent == [topics.gw("gw-a", "receipt")]
    assert r.flush() == 0
