"""Bounded hub state outside alerts: node records and push subscriptions have explicit size and age bounds
(the spool's are in tests/ingest/test_exactly_once.py). Real SQLite files."""

from __future__ import annotations

import sqlite3
import time

from contract.models import DeviceInfo, DeviceKind, GatewayState
from hub.models import NodeRegistration
from hub.nodes import UNREGISTERED_MAX_AGE_S, NodeRegistry
from hub.residents.channels.webpush import Subscriber, SubscriptionStore


def birth(*ids: str) -> GatewayState:
    return GatewayState(gateway="gw-1", state="online", session=1, ts=1.0,
                        devices=tuple(DeviceInfo(id=i, kind=DeviceKind.NOISE_NODE) for i in ids))


def test_node_records_are_capped_and_unprovisioned_ones_age_out(tmp_path):
    clock = [1_000_000.0]
    db = sqlite3.connect(tmp_path / "hub.db", isolation_level=None)
    nodes = NodeRegistry(db, "1.0.0", clock=lambda: clock[0])
    nodes.max_nodes = 5
    nodes.register(NodeRegistration(id="kept", kind="noise", zone="z1", key_sha256="0" * 64, fw="1.0.0"))
    nodes.on_birth(birth(*(f"n{i}" for i in range(10))))
    assert len(nodes.nodes) == 5 and nodes.refused == 6  # "kept" + 4 reported; 6 new ids refused, counted
    clock[0] += UNREGISTERED_MAX_AGE_S + 1
    nodes.on_birth(birth("fresh"))  # the next new id prunes first, then fits
    assert set(nodes.nodes) == {"kept", "fresh"} and nodes.pruned == 4
    again = NodeRegistry(db, "1.0.0", clock=lambda: clock[0])  # the pruning is durable
    assert set(again.nodes) == {"kept", "fresh"}


def test_push_subscriptions_are_capped_oldest_first_and_expire(tmp_path):
    path = tmp_path / "subs.db"
    store = SubscriptionStore(path, max_subscriptions=3)
    for i in range(5):
        store.add(Subscriber(f"https://push.example/{i}", "k" * 87, "a" * 22, frozenset({"z1"})))
    store.add(Subscriber("https://push.example/2", "k" * 87, "a" * 22, frozenset({"z1"})))  # renewed: now newest
    assert {s.endpoint[-1] for s in store.for_zone("z1")} == {"2", "3", "4"} and store.evicted == 2
    store.close()
    assert {s.endpoint[-1] for s in SubscriptionStore(path).for_zone("z1")} == {"2", "3", "4"}
    with sqlite3.connect(path) as con:
        con.execute("UPDATE push_subs SET created = ? WHERE endpoint LIKE '%3'", (time.time() - 500 * 86400,))
    reopened = SubscriptionStore(path)
    assert {s.endpoint[-1] for s in reopened.for_zone("z1")} == {"2", "4"} and reopened.evicted == 1


def test_resident_page_alert_times_are_bounded_oldest_first():
    from hub.residents.state import ZoneStateStore

    store = ZoneStateStore(["z"])
    for i in range(ZoneStateStore.MAX_TIMES + 500):
        store.set_times(f"A-{i}", (float(i), None))
    store.set_times("A-1400", (0.0, 0.0), keep=True)  # known already: kept as it was
    assert len(store.times) == ZoneStateStore.MAX_TIMES
    assert "A-0" not in store.times and store.times["A-1499"] == (1499.0, None)
    assert store.times["A-1400"] == (1400.0, None)
