"""Does a broker lose QoS 1 messages it has already acknowledged (PUBACK) when a node dies? The evidence behind
telemetry receipts (docs/protocol.md "Receipts").

    python -m bench.broker_ack_loss --broker nats --runs 5 --json
    python -m bench.broker_ack_loss --broker mosquitto --runs 3 --json

``nats``: a real 3-node NATS 2.9 JetStream cluster with MQTT (simulators.nats). A persistent QoS 1 subscriber on
one node; a publisher on the JetStream meta leader's node sends numbered QoS 1 messages at ``--rate`` per second;
that node is killed (``kill -9``) ``--kill-after-s`` in. After ``--settle-s``, every message the publisher got a
PUBACK for should have reached the subscriber.

``mosquitto``: one real Mosquitto with persistence on (its default autosave: every 1,800 s). A persistent QoS 1
subscriber subscribes and disconnects, so the broker queues for it; the publisher sends ``--count`` messages and
gets their PUBACKs; Mosquitto is killed with ``kill -9`` and started again on the same port and files; the
subscriber reconnects to its session.

Prints per run: ``sent``, ``acked`` (PUBACKs received), ``received`` (distinct, by the subscriber) and
``acked_not_received`` (the broker's word broken), and the totals.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import paho.mqtt.client as mqtt

from simulators.brokers import Mosquitto
from simulators.nats import NatsCluster


class Sub:
    def __init__(self, port: int, cid: str, user: str | None = None, password: str | None = None) -> None:
        self.got: set[int] = set()
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=False)
        if user:
            self.c.username_pw_set(user, password)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe("bench/ackloss", qos=1)
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        if not self.subscribed.wait(15):
            raise RuntimeError("the subscriber got no SUBACK")

    def _on_message(self, c, u, m) -> None:
        with self.lock:
            self.got.add(int(m.payload))

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


class Pub:
    def __init__(self, port: int, user: str | None = None, password: str | None = None) -> None:
        self.acked: set[int] = set()
        self.mids: dict[int, int] = {}
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}")
        if user:
            self.c.username_pw_set(user, password)
        self.c.max_inflight_messages_set(1000)
        self.c.on_publish = self._on_publish
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        self.sent = 0

    def _on_publish(self, c, u, mid, rc, props) -> None:
        with self.lock:
            if (n := self.mids.get(mid)) is not None:
                self.acked.add(n)

    def send(self) -> None:
        with self.lock:
            info = self.c.publish("bench/ackloss", str(self.sent).encode(), qos=1)
            self.mids[info.mid] = self.sent
        self.sent += 1

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def result(pub: Pub, got: set[int], **extra) -> dict:
    lost = sorted(pub.acked - got)
    return {**extra, "sent": pub.sent, "acked": len(pub.acked), "received": len(got),
            "acked_not_received": len(lost), "lost_first": lost[:10]}


def nats_run(rate: float, kill_after_s: float, publish_s: float, settle_s: float) -> dict:
    with NatsCluster() as cl:
        victim = int((cl.meta_leader() or "n0").removeprefix("n"))
        sub = Sub(cl.nodes[(victim + 1) % 3].mqtt_port, "ackloss-sub", cl.username, cl.password)
        pub = Pub(cl.nodes[victim].mqtt_port, cl.username, cl.password)
        t0, killed = time.monotonic(), False
        while time.monotonic() - t0 < publish_s:
            pub.send()
            if not killed and time.monotonic() - t0 >= kill_after_s:
                cl.kill(victim)
                killed = True
            time.sleep(1 / rate)
        pub.close()
        time.sleep(settle_s)
        with sub.lock:
            got = set(sub.got)
        sub.close()
        return result(pub, got, broker="nats", killed=f"n{victim} (meta leader, publisher's node)")


def mosquitto_run(count: int, settle_s: float) -> dict:
    broker = Mosquitto(persistence=True).start()
    try:
        sub = Sub(broker.port, "ackloss-sub")
        sub.close()  # offline: the broker queues for the session
        pub = Pub(broker.port)
        for _ in range(count):
            pub.send()
        end = time.monotonic() + 30
        while len(pub.acked) < count and time.monotonic() < end:
            time.sleep(0.05)
        pub.close()
        assert broker.proc is not None
        broker.proc.kill()  # kill -9
        broker.proc.wait()
        broker.start()
        sub = Sub(broker.port, "ackloss-sub")
        time.sleep(settle_s)
        with sub.lock:
            got = set(sub.got)
        sub.close()
        return result(pub, got, broker="mosquitto", killed="the broker (kill -9, restarted on its files)")
    finally:
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--broker", choices=("nats", "mosquitto"), default="nats")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=float, default=200.0, help="nats: messages per second")
    ap.add_argument("--kill-after-s", type=float, default=1.5)
    ap.add_argument("--publish-s", type=float, default=3.0)
    ap.add_argument("--count", type=int, default=200, help="mosquitto: messages queued before the kill")
    ap.add_argument("--settle-s", type=float, default=20.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    runs = [nats_run(a.rate, a.kill_after_s, a.publish_s, a.settle_s) if a.broker == "nats"
            else mosquitto_run(a.count, a.settle_s) for _ in range(a.runs)]
    out = {"broker": a.broker, "runs": runs, "acked": sum(r["acked"] for r in runs),
           "acked_not_received": sum(r["acked_not_received"] for r in runs),
           "runs_with_loss": sum(1 for r in runs if r["acked_not_received"])}
    print(json.dumps(out) if a.json else json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
