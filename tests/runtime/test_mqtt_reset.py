"""runtime/mqtt.py on a busy or broken link: a TCP reset that lands together with several packets, and a SUBACK
behind a persistent session's backlog. Real Mosquitto; the reset comes from the misbehaving relay
(simulators/netcut.py), on both event loops the services run on.

uvloop closes an fd's watcher on a poll error without calling the reader again (uvloop issue 552). paho reads one
packet per reader call, so before the fix the packets behind the first and the reset itself waited for the
keepalive timeout (60 s here): messages late, the link mute, and the next publish raised RuntimeError from
``add_writer``. Now the session reads them and ends within a misc tick."""

from __future__ import annotations

import asyncio
import time

import pytest
import uvloop

from runtime.mqtt import MqttLinkError, MqttParams, MqttSession
from simulators.netcut import NetCut

KEEPALIVE_S = 60
DEADLINE_S = 10  # a protocol deadline far below the keepalive timeout (1.5 x 60 s) that used to end it


async def scenario(broker_port: int, burst: int = 1) -> tuple[list[bytes], str, str, int]:
    cut = await NetCut(broker_port).start()
    got: list[bytes] = []
    sub = MqttSession(MqttParams("127.0.0.1", cut.port, "reset-sub", keepalive_s=KEEPALIVE_S, stuck_puback_s=0,
                                 read_burst=burst),
                      on_message=lambda topic, payload, *_: got.append(payload))
    pub = MqttSession(MqttParams("127.0.0.1", broker_port, "reset-pub", keepalive_s=KEEPALIVE_S))
    try:
        async with sub, pub:
            await sub.subscribe([("reset/#", 0)])  # QoS 0: no PUBACK write meets the reset first
            cut.reset_after_packets("down", 3)
            for i in range(3):
                await pub.publish(f"reset/{i}", b"m%d" % i, qos=1)
            try:
                await asyncio.wait_for(sub.wait_closed(), DEADLINE_S)
                ended = "closed without an error"
            except MqttLinkError as exc:
                ended = f"link error: {exc}"
            except TimeoutError:
                ended = "still open"
            try:
                sub.publish_nowait("reset/after", b"x")
                after = "accepted"
            except MqttLinkError:
                after = "MqttLinkError"
            return got, ended, after, cut.stats["resets_down"]
    finally:
        await cut.close()


@pytest.mark.parametrize("burst", [1, 32])  # 32: several packets per readable event, as the hub's ingest reads
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_packets_that_arrive_with_a_reset_are_read_and_the_session_ends(mosquitto, loop, burst):
    run = uvloop.run if loop == "uvloop" else asyncio.run
    got, ended, after, resets = run(scenario(mosquitto.port, burst))
    assert resets == 1
    assert ended.startswith("link error"), ended
    assert sorted(got) == [b"m0", b"m1", b"m2"]  # none left behind in the socket
    assert after == "MqttLinkError"  # not a RuntimeError from the event loop


async def backlog(broker_port: int) -> tuple[int, str]:
    params = MqttParams("127.0.0.1", broker_port, "backlog-sub", clean_session=False, publish_timeout_s=1.0)
    async with MqttSession(params) as first:
        await first.subscribe([("backlog/#", 1)])
    async with MqttSession(MqttParams("127.0.0.1", broker_port, "backlog-pub")) as pub:
        for i in range(40):
            await pub.publish(f"backlog/{i}", b"x", qos=1)
    got: list[str] = []

    def slow(topic: str, *_: object) -> None:  # a busy hub: each queued message costs it 0.1 s
        time.sleep(0.1)
        got.append(topic)
    async with MqttSession(params, on_message=slow) as again:
        try:
            await again.subscribe([("backlog/#", 1)])  # its SUBACK is behind ~2 s of queued messages
            outcome = "subscribed"
        except MqttLinkError as exc:
            outcome = str(exc)
        for _ in range(100):
            if len(got) >= 40:
                break
            await asyncio.sleep(0.1)
    return len(got), outcome


def test_a_subscribe_behind_a_backlog_waits_while_messages_arrive(mosquitto):
    """A persistent session's queued messages come before the SUBACK. The subscribe timeout (1 s here) counts
    silence, not the backlog: giving up while messages flow would have them delivered again, forever."""
    n, outcome = asyncio.run(backlog(mosquitto.port))
    assert outcome == "subscribed"
    assert n == 40
