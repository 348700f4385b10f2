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
DEADLINE_S = 30  # a protocol deadline: the messages are local; only a broken reader misses it


def _watcher(port: int, all_seen: threading.Event) -> paho.Client:
    seen = []

    def on_message(client, userdata, msg):
        seen.append(msg.payload)
        if len(seen) == N:
            all_seen.set()
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="burst-watch")
    c.on_message = on_message
    subscribed = threading.Event()
    c.on_subscribe = lambda *a: subscribed.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.subscribe("burst/#", qos=0)
    assert subscribed.wait(DEADLINE_S)
    return c


async def scenario(port: int, burst: int) -> tuple[list[bytes], int, bool]:
    all_seen = threading.Event()
    held = []
    got: list[bytes] = []
    session: MqttSession | None = None

    def on_message(topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
        if not held:  # hold the loop until the broker has sent everything: the rest waits in the socket
            held.append(all_seen.wait(DEADLINE_S))
        got.append(payload)
        assert session is not None
        session.ack(mid, qos)
    watch = _watcher(port, all_seen)
    params = MqttParams("127.0.0.1", port, "burst-sub", manual_ack=True, max_inflight=0, read_burst=burst)
    try:
        async with MqttSession(params, on_message=on_message) as session:
            await session.subscribe([("burst/#", 1)])
            async with MqttSession(MqttParams("127.0.0.1", port, "burst-pub", max_inflight=0)) as pub:
                for i in range(N):
                    pub.publish_nowait(f"burst/{i % 7}", b"%06d" % i, qos=1)
                pub.flush_writes()
                for _ in range(DEADLINE_S * 100):
                    if len(got) >= N and not pub.pending_pubacks:
                        break
                    await asyncio.sleep(0.01)
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
