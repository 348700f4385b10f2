"""The hub's MQTT connection (aiomqtt, MQTT 3.1.1): supervised with reconnect and backoff, a retained
HubState ``online`` birth and an ``offline`` last-will, and a dispatcher that decodes every gateway
channel and never raises: malformed payloads are counted per channel and reason, logged and dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable

import aiomqtt
from pydantic import BaseModel

from contract import topics
from contract.errors import MalformedMessage
from contract.models import Ack, Event, GatewayState, Heartbeat, HubState, TelemetryBatch, decode
from hub.config import MqttSettings
from hub.metrics import HubMetrics

log = logging.getLogger(__name__)
client_log = logging.getLogger("hub.mqtt.client")
client_log.setLevel(logging.ERROR)  # aiomqtt warns once per concurrent publish ("N pending publish calls")

# Two connections, so alert traffic never waits behind a telemetry backlog (invariant 3): the control
# connection (states, heartbeats, acks; commands and retained hub/zone states go out on it) and the
# ingest connection (telemetry, events). The hub never subscribes to .../cmd: on MQTT 3.1.1 it would
# receive its own commands back.
CONTROL = (topics.GwChannel.STATE, topics.GwChannel.HEARTBEAT, topics.GwChannel.ACK)
INGEST = (topics.GwChannel.TELEMETRY, topics.GwChannel.EVENT)
SUBSCRIBED = CONTROL + INGEST
MODELS: dict[str, type[BaseModel]] = {
    "state": GatewayState, "heartbeat": Heartbeat, "telemetry": TelemetryBatch, "event": Event, "ack": Ack,
}
Handler = Callable[[BaseModel], None]
SIGNED = frozenset({"state", "heartbeat", "ack", "event"})  # sealed by the gateway (contract.signed, hub.gwtrust)


class Dispatcher:
    """topic + payload -> validated model -> handlers. Sync and O(1) per message; never raises."""

    def __init__(self, metrics: HubMetrics) -> None:
        self.metrics = metrics
        self.handlers: dict[str, list[Handler]] = {ch: [] for ch in MODELS}
        self.verifier = None  # hub.gwtrust.Verifier: only verified, fresh gateway messages reach the handlers
        self._received: dict[str, object] = {}

    def on(self, channel: str, handler: Handler) -> None:
        """Register a handler for a gateway channel (e.g. hub/ingest/ adds telemetry and event handlers)."""
        self.handlers[topics.GwChannel(channel).value].append(handler)

    def dispatch(self, topic: str, payload: bytes) -> None:
        channel = "unknown"
        try:
            parsed = topics.parse(topic)
            channel = parsed.channel
            if parsed.kind != "gw" or channel not in MODELS:
                return  # hub/zone states (our own retained messages) and commands: not for us
            counter = self._received.get(channel)
            if counter is None:  # labels() takes a lock and builds a key: once per channel, not per message
                counter = self._received[channel] = self.metrics.mqtt_messages.labels(channel)
            counter.inc()
            verifier = self.verifier if channel in SIGNED else None
            if verifier is not None and (payload := verifier.open(parsed.ident, channel, payload)) is None:
                return  # unsigned or unverifiable: counted and logged by the verifier
            msg = decode(MODELS[channel], payload, topic=topic)
            if getattr(msg, "gateway", parsed.ident) != parsed.ident:
                raise MalformedMessage("gateway_mismatch", topic=topic,
                                       detail=f"payload says {getattr(msg, 'gateway', '')!r}")
            if verifier is not None and not verifier.admit(parsed.ident, channel, getattr(msg, "session", None),
                                                           getattr(msg, "ctr", None)):
                return  # replayed, stale session or implausible jump: counted by the verifier
        except MalformedMessage as exc:
            self.metrics.malformed.labels(channel, exc.reason).inc()
            log.warning("%s", exc)
            return
        for handler in self.handlers[channel]:
            try:
                handler(msg)
            except Exception:  # never raise inside a message callback: log, count, keep going
                self.metrics.malformed.labels(channel, "handler_error").inc()
                log.exception("handler for %s failed on %s", channel, topic)


def dispatching_queue(dispatch: Callable[[str, bytes], None],
                      after: Callable[[aiomqtt.Message], None] | None = None) -> type[asyncio.Queue]:
    """A queue class for aiomqtt's ``queue_type`` that hands each message to ``dispatch`` at once.

    aiomqtt drives paho from the event loop, so ``put_nowait`` runs in the loop thread: dispatching there
    is safe and skips the task that ``client.messages`` creates per message (the ack hot path).
    """

    class DispatchingQueue(asyncio.Queue):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            payload = item.payload
            if not isinstance(payload, bytes | bytearray):
                payload = b"" if payload is None else str(payload).encode()
            try:
                dispatch(item.topic.value, bytes(payload))
            except Exception:  # Dispatcher never raises; this only guards the MQTT client itself
                log.exception("dispatch failed for %s", item.topic.value)
            if after is not None:
                try:
                    after(item)
                except Exception:
                    log.exception("after-dispatch hook failed for %s", item.topic.value)

    return DispatchingQueue


class HubMqtt:
    """One supervised connection. ``control=True``: the hub's voice (HubState birth and last-will,
    commands, zone states); otherwise a listen-only connection (client id suffixed ``-ingest``)."""

    def __init__(self, cfg: MqttSettings, dispatcher: Dispatcher, metrics: HubMetrics, *,
                 keys: tuple[str, ...] = (), on_connect: Callable[[], Awaitable[None]] | None = None,
                 channels: tuple[topics.GwChannel, ...] = SUBSCRIBED, control: bool = True,
                 defer_ack: Callable[[Callable[[], object] | None], None] | None = None) -> None:
        """``defer_ack``: acknowledge QoS 1 messages only when the application says so. Each message's PUBACK
        is handed to ``defer_ack(send)``; the ingest calls ``send()`` once the message's lines are committed
        to its durable spool, so a hub crash before that makes the broker redeliver (persistent session)."""
        self.cfg = cfg
        self.channels = channels
        self.control = control
        self.client_id = cfg.client_id if control else f"{cfg.client_id[:57]}-ingest"
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.keys = keys
        self.on_connect = on_connect
        self.defer_ack = defer_ack if cfg.persistent_session else None  # without a session nothing is redelivered
        self.client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()

    def _state(self, state: str) -> bytes:
        return HubState(state=state, ts=time.time(), keys=self.keys).to_bytes()

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Publish; False (never an exception) when not connected or the broker did not take it."""
        client = self.client
        if client is None:
            return False
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=10)
            return True
        except aiomqtt.MqttError as exc:
            log.warning("publish to %s failed: %s", topic, exc)
            return False

    def publish_nowait(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Hand a message to the MQTT client without waiting for its PUBACK (the hot path for commands:
        the gateway's ack is the confirmation that matters; paho still retries QoS 1 until PUBACK).

        Uses aiomqtt's underlying paho client: one call per command instead of a task, an Event and
        aiomqtt's per-publish bookkeeping, which grows with the number of publishes in flight."""
        client = self.client
        paho_client = getattr(client, "_client", None)
        if paho_client is None:
            return False
        info = paho_client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != 0:
            log.warning("publish to %s failed: rc %s", topic, info.rc)
            return False
        return True

    def flush_writes(self) -> None:
        """Write what the client has queued to the socket now, instead of at the loop's next writer
        callback: commands are on the wire before any other task (hooks, API) gets the CPU."""
        paho_client = getattr(self.client, "_client", None)
        if paho_client is not None and paho_client.want_write():
            paho_client.loop_write()

    async def run(self) -> None:
        """Connect, subscribe and dispatch forever; reconnect with jittered exponential backoff."""
        delay = self.cfg.reconnect_min_s
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.metrics.mqtt_disconnects.labels("control" if self.control else "ingest").inc()
                log.warning("MQTT %s:%d: %s; reconnecting in %.1fs", self.cfg.host, self.cfg.port, exc, delay)
            finally:
                self.client = None
                self.connected.clear()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.cfg.reconnect_max_s)
            if self._was_up:
                delay = self.cfg.reconnect_min_s

    _was_up = False

    async def _session(self) -> None:
        self._was_up = False
        will = aiomqtt.Will(topics.HUB_STATE, self._state("offline"), qos=1, retain=True) if self.control else None
        holder: list = []
        after = None
        if self.defer_ack is not None:
            defer = self.defer_ack

            def after(item: aiomqtt.Message, _holder=holder) -> None:
                if _holder:  # the ack goes out on this connection's client, or not at all; None: QoS 0
                    defer(functools.partial(_holder[0].ack, item.mid, item.qos) if item.qos > 0 else None)
        conn = aiomqtt.Client(self.cfg.host, self.cfg.port, identifier=self.client_id,
                              username=self.cfg.username, password=self.cfg.password,
                              protocol=aiomqtt.ProtocolVersion.V311, will=will,
                              clean_session=not self.cfg.persistent_session, keepalive=self.cfg.keepalive_s,
                              timeout=10, max_inflight_messages=1000, logger=client_log,
                              tls_params=aiomqtt.TLSParameters(**tls) if (tls := self.cfg.tls_files()) else None,
                              queue_type=dispatching_queue(self.dispatcher.dispatch, after))
        if after is not None:
            conn._client.manual_ack_set(True)
            holder.append(conn._client)
        async with conn as client:
            await client.subscribe([(f"{topics.ROOT}/gw/+/{ch.value}", 1) for ch in self.channels])
            self.client = client
            self._was_up = True
            self.metrics.mqtt_connects.labels("control" if self.control else "ingest").inc()
            log.info("MQTT connected to %s:%d as %s", self.cfg.host, self.cfg.port, self.client_id)
            if self.control:
                await client.publish(topics.HUB_STATE, self._state("online"), qos=1, retain=True)
            self.connected.set()
            if self.on_connect is not None:
                await self.on_connect()
            async for _ in client.messages:  # messages are dispatched by the queue; this waits for a disconnect
                pass

    async def close(self) -> None:
        """Announce a clean shutdown (the last-will only fires on an unclean one)."""
        if self.client is not None and self.control:
            await self.publish(topics.HUB_STATE, self._state("offline"), 1, True)
