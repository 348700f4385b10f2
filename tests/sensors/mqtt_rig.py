"""A real MQTT publisher (the injected ``publish``) and a real subscriber that counts what the hub would get."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field

import aiomqtt

from contract.codecs import telemetry as telemetry_wire
from contract.models import Event, TelemetryBatch, decode
from contract.signed import Unverified, split


class TestUplink:
    """Stands in for gateway.uplink: one aiomqtt connection, reconnecting; ``publish`` returns after PUBACK
    and raises while the link is down (or while the hub has not subscribed yet, so a test broker without
    persistence cannot lose what nobody listens to)."""

    __test__ = False

    def __init__(self, port: int, hub_ready: asyncio.Event, on_connected=None) -> None:
        self.port = port
        self.hub_ready = hub_ready
        self.on_connected = on_connected
        self.client: aiomqtt.Client | None = None
        self.connects = 0
        self.published = 0

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        client = self.client
        if client is None or not self.hub_ready.is_set():
            raise ConnectionError("uplink down")
        await client.publish(topic, payload, qos=qos, timeout=5)
        self.published += 1

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier="gw-test-uplink",
                                          clean_session=True, timeout=5) as client:
                    self.client = client
                    self.connects += 1
                    if self.on_connected is not None:
                        self.on_connected()
                    async for _ in client.messages:
                        pass
            except aiomqtt.MqttError:
                pass
            finally:
                self.client = None
            await asyncio.sleep(0.05)


@dataclass
class HubCounter:
    """Subscribes to every gateway's telemetry and events; de-duplicates batches by (gateway, session, seq)."""

    port: int
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    batches: dict[tuple[str, int, int], TelemetryBatch] = field(default_factory=dict)
    order: list[tuple[str, int, int]] = field(default_factory=list)
    duplicates: int = 0
    mismatched_duplicates: int = 0
    events: dict[str, Event] = field(default_factory=dict)
    event_duplicates: int = 0
    connects: int = 0
    malformed: Counter = field(default_factory=Counter)

    @property
    def readings(self):
        return [r for key in self.order for r in self.batches[key].readings]

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier="hub-counter", clean_session=True,
                                          timeout=5) as client:
                    await client.subscribe("dozor/v1/gw/+/telemetry", qos=1)
                    await client.subscribe("dozor/v1/gw/+/event", qos=1)
                    self.connects += 1
                    self.ready.set()
                    async for msg in client.messages:
                        self._take(msg.topic.value, bytes(msg.payload))
            except aiomqtt.MqttError:
                pass
            finally:
                self.ready.clear()
            await asyncio.sleep(0.05)

    def _take(self, topic: str, payload: bytes) -> None:
        if topic.endswith("/event"):
            ev = decode(Event, _payload(payload), topic=topic)
            if ev.id in self.events:
                self.event_duplicates += 1
            self.events[ev.id] = ev
            return
        batch = telemetry_wire.decode_batch(payload, topic=topic)  # wire version 1 or 2
        key = (batch.gateway, batch.session, batch.seq)
        if key in self.batches:
            self.duplicates += 1
            if self.batches[key] != batch:
                self.mismatched_duplicates += 1
            return
        self.batches[key] = batch
        self.order.append(key)


@contextlib.asynccontextmanager
async def running(*coros):
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _payload(wire: bytes) -> bytes:
    """A real gateway's events are sealed (contract.signed); a test uplink without an identity sends them plain."""
    try:
        return split(wire)[0]
    except Unverified as exc:
        assert exc.reason == "unsigned", exc
        return wire
