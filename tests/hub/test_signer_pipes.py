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


def counting_subscriber(port: int, topic: str, want: int) -> tuple[paho.Client, threading.Event]:
    """A plain paho client on its own thread: it keeps receiving while the test blocks the event loop."""
    got, done, subscribed = [0], threading.Event(), threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="count-cmds", protocol=paho.MQTTv311)

    def on_message(*_: object) -> None:
        got[0] += 1
        if got[0] >= want:
            done.set()

    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe(topic, 1)
    assert subscribed.wait(20)
    return client, done


async def test_the_control_connection_writes_every_command_at_once_without_waiting_for_pubacks():
    """With paho's default inflight window (the hub had 1,000), commands past the window wait for PUBACKs, which
    only the event loop reads; here the loop is blocked after the writes, and every command still arrives."""
    n = 1500
    with Mosquitto() as broker:
        metrics = HubMetrics()
        control = HubMqtt(MqttSettings(url=broker.url, client_id="hub-window"), Dispatcher(metrics), metrics)
        task = asyncio.create_task(control.run())
        sub, done = counting_subscriber(broker.port, "window/+/cmd", n)
        try:
            await asyncio.wait_for(control.connected.wait(), 20)
            assert all(control.publish_nowait(f"window/gw-{i}/cmd", b"c" * 40, 1, False) for i in range(n))
            control.flush_writes()
            assert done.wait(60)  # blocking: no PUBACK is read by the hub until every command has arrived
        finally:
            sub.loop_stop()
            sub.disconnect()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
