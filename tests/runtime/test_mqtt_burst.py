"""runtime/mqtt.py ``read_burst``: several MQTT packets per readable event (the hub's ingest connection), against a
real Mosquitto. The subscriber's first message callback holds the event loop until a second subscriber has every
message, so the broker has written them all to the socket: the rest must then come in bursts, in order, each
exactly once, with the QoS 1 PUBACKs sent by the owner (``manual_ack``) as the hub sends them."""

from __future__ import annotations

import asyncio
import threading

import paho.mqtt.client as paho
import pytest
import uvloop

from runtime.mqtt import MqttParams, MqttSession
from simulators.brokers import Mosquitto

N = 600


def until(event: threading.Event, gone: threading.Event) -> bool:
    """Wait for ``event`` with no time bound of its own: it ends when the event comes or the watcher's connection
    closes (a dead broker, or keepalive's protocol deadline on a silent one). True: the event came."""
    while not event.is_set() and not gone.is_set():
        event.wait(0.05)
    return event.is_set()


def _watcher(port: int, all_seen: threading.Event, gone: threading.Event) -> paho.Client:
    seen = []

    def on_message(client, userdata, msg):
        seen.append(msg.payload)
        if len(seen) == N + 1:  # with the barrier
            all_seen.set()
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="burst-watch")
    c.on_message = on_message
    subscribed = threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_disconnect = lambda *a: gone.set()
    c.connect("127.0.0.1", port, keepalive=10)
    c.loop_start()
    c.subscribe("burst/#", qos=0)
    assert until(subscribed, gone)
    return c


async def scenario(port: int, burst: int) -> tuple[list[bytes], int, bool]:
    all_seen, gone = threading.Event(), threading.Event()
    complete = asyncio.Event()
    held = []
    got: list[bytes] = []
    session: MqttSession | None = None

    def on_message(topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
        if not held:  # hold the loop until the broker has sent everything: the rest waits in the socket
            held.append(until(all_seen, gone))
        if payload == b"end":  # the publisher's last message: everything it sent before is in (or lost)
            complete.set()
        else:
            got.append(payload)
        assert session is not None
        session.ack(mid, qos)
    watch = _watcher(port, all_seen, gone)
    params = MqttParams("127.0.0.1", port, "burst-sub", manual_ack=True, max_inflight=0, read_burst=burst)
    try:
        async with MqttSession(params, on_message=on_message) as session:
            await session.subscribe([("burst/#", 1)])
            async with MqttSession(MqttParams("127.0.0.1", port, "burst-pub", max_inflight=0)) as pub:
                for i in range(N):
                    pub.publish_nowait(f"burst/{i % 7}", b"%06d" % i, qos=1)
                pub.publish_nowait("burst/end", b"end", qos=1)  # an ordering barrier, not a time bound
                pub.flush_writes()
                # until the barrier is in, or a link died (no time bound of the test's own)
                waits = [asyncio.ensure_future(w) for w in (complete.wait(), session.wait_closed(), pub.wait_closed())]
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
            events = session.read_events
    finally:
        watch.loop_stop()
        watch.disconnect()
    return got, events, bool(held and held[0])


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("burst", [1, 32])
def test_a_read_burst_keeps_order_and_counts(loop, burst):
    with Mosquitto(extra_conf="max_inflight_messages 0\n") as broker:  # as the ingest bench: no in-flight window
        run = uvloop.run if loop == "uvloop" else asyncio.run
        got, events, held = run(scenario(broker.port, burst))
    assert held  # the broker had sent all N while the loop was held
    assert got == [b"%06d" % i for i in range(N)]  # every message once, in order
    if burst == 1:
        assert events == 0  # paho's own reader: one packet per event
    else:  # N - 1 packets were waiting: read 32 a time, not one per event
        assert 0 < events <= 2 + (N - 1) // burst + 1, events
