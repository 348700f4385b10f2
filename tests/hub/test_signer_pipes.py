"""The command signer's worker on two pipes the event loop watches (hub/signproc.py, hub/signworker.py), and the
hub's control connection without a client-side inflight window (hub/mqtt.py): what bench.dispatch's 2,000-gateway
phase relies on, checked by counts and signatures, never by time."""

from __future__ import annotations

import asyncio
import threading

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from contract.command import b64url_decode, token_sha256
from hub.config import MqttSettings
from hub.metrics import HubMetrics
from hub.mqtt import Dispatcher, HubMqtt
from hub.signproc import PIPE_BYTES, SignerProcess
from simulators.brokers import Mosquitto


def check(key: Ed25519PrivateKey, inputs: list[bytes], answer: list[tuple[bytes, str]]) -> None:
    assert len(answer) == len(inputs)
    for data, (sig, sha) in zip(inputs, answer, strict=True):
        key.public_key().verify(b64url_decode(sig.decode()), data)  # raises InvalidSignature
        assert sha == token_sha256(data + b"." + sig)  # the hash the hub stores and matches acks by


async def test_the_signer_answers_each_request_in_order_even_one_bigger_than_its_pipe():
    key = Ed25519PrivateKey.generate()
    signer = SignerProcess()
    try:
        await signer.start(key, "kid-1")
        big = [b"eyJ." + str(i).encode() * 120 for i in range(3000)]  # ~1.3 MB: written in parts as the worker reads
        assert sum(map(len, big)) > PIPE_BYTES
        requests = [big, [], [b"eyJ.a", b"eyJ.b"], big[:7]]
        answers = await asyncio.gather(*(signer.submit(key, "kid-1", r) for r in requests))
        for inputs, answer in zip(requests, answers, strict=True):
            check(key, inputs, answer)
        first = signer.pid
        other = Ed25519PrivateKey.generate()  # a rotated key: a new worker, which signs with the new key only
        check(other, big[:3], await signer.submit(other, "kid-2", big[:3]))
        assert signer.pid != first and signer.started == 2
        pending = signer.submit(other, "kid-2", big)
        signer.close()
        assert pending.cancelled() and signer.pid is None  # the caller signs a cancelled step on the loop
    finally:
        signer.close()


class CountingSubscriber:
    """A plain paho client on its own thread (it keeps receiving while the test blocks the event loop), at QoS 0 so
    the broker passes messages on in the order it received them. It counts the commands that came before the
    marker. Its events are also set when its connection closes, so a broken broker fails the test and never
    hangs it."""

    def __init__(self, port: int, topic: str, marker: str) -> None:
        self.commands, self.at_marker, self.granted = 0, None, None
        self.marked, self.subscribed = threading.Event(), threading.Event()
        self.client = client = paho.Client(CallbackAPIVersion.VERSION2, client_id="count-cmds",
                                           protocol=paho.MQTTv311)

        def on_message(_c: object, _u: object, msg: paho.MQTTMessage) -> None:
            if msg.topic == marker:
                self.at_marker = self.commands
                self.marked.set()
            else:
                self.commands += 1

        def on_subscribe(_c: object, _u: object, _mid: int, codes: list, _p: object) -> None:
            self.granted = [int(c.value) for c in codes]
            self.subscribed.set()

        def on_disconnect(*_: object) -> None:
            self.subscribed.set()
            self.marked.set()

        client.on_message, client.on_subscribe, client.on_disconnect = on_message, on_subscribe, on_disconnect
        client.connect("127.0.0.1", port)
        client.loop_start()
        client.subscribe([(topic, 0), (marker, 0)])
        self.subscribed.wait()
        assert self.granted == [0, 0], self.granted

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def test_the_control_connection_writes_every_command_at_once_without_waiting_for_pubacks():
    """With paho's default inflight window (the hub had 1,000), commands past the window wait for PUBACKs, which
    only the event loop reads; here the loop stays blocked after the writes. A QoS 0 marker written after the
    commands on the same connection is no part of that window: the broker has every command before it, or the
    window held some back (old code: 1,000 of 1,500 before the marker)."""
    n = 1500
    with Mosquitto() as broker:
        metrics = HubMetrics()
        control = HubMqtt(MqttSettings(url=broker.url, client_id="hub-window"), Dispatcher(metrics), metrics)
        task = asyncio.create_task(control.run())
        sub = CountingSubscriber(broker.port, "window/+/cmd", "window/marker")
        try:
            connected = asyncio.ensure_future(control.connected.wait())
            await asyncio.wait([connected, task], return_when=asyncio.FIRST_COMPLETED)  # or the client died
            assert control.connected.is_set(), task
            assert all(control.publish_nowait(f"window/gw-{i}/cmd", b"c" * 40, 1, False) for i in range(n))
            assert control.publish_nowait("window/marker", b"", 0, False)
            control.flush_writes()
            sub.marked.wait()  # blocking: no PUBACK is read by the hub meanwhile
            assert sub.at_marker == n, f"{sub.at_marker} of {n} commands were on the wire before the marker"
        finally:
            sub.close()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
