"""The gateway's own supervised MQTT uplink (aiomqtt 2.5, MQTT 3.1.1).

- Reconnects forever with exponential backoff and jitter. Nothing raised below (a broker going away,
  a bug in a handler) ends the supervisor; it is logged and counted (cf. thingsboard-gateway #2086).
- Before every connection attempt the persisted ``session`` counter goes up and the retained last-will
  is ``GatewayState(offline, session)``. On connect: subscribe to the cmd topic and to every topic in
  ``subscriptions`` (e.g. the zone's retained public state, whose handler runs in the message callback
  and must never raise; a handler that does is counted ``mqtt_handler_errors``), publish the retained
  birth ``GatewayState(online, session, devices, keys, heartbeat_s)``, start heartbeats. When a device's
  info changes (a reflashed node reports a new firmware version) ``republish_birth`` sends the birth again
  with the same session, so the hub's registry sees the new ``DeviceInfo.fw`` at once.
- Priority: acks have their own queue and drain task that publishes immediately; bulk traffic (the
  telemetry outbox) goes through ``publish_bulk``, which only sends when no ack is waiting and keeps
  at most one bulk message in flight, so commands and acks never queue behind a backlog.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

import aiomqtt

from contract import topics
from contract.errors import MalformedMessage
from contract.models import Ack, Event, GatewayState, Heartbeat, decode
from gateway.config import MqttSection
from gateway.counters import Counters
from gateway.errors import GatewayError, ReplayStoreError
from gateway.identity import GatewayIdentity
from gateway.replay import StateStore

MAX_PENDING_ACKS = 10_000


class UplinkError(GatewayError):
    """The uplink is down (publish_bulk callers keep their data and retry later)."""


class Uplink:
    def __init__(self, cfg: MqttSection, gateway_id: str, *, store: StateStore,
                 birth: Callable[[int], GatewayState],
                 heartbeat: Callable[[int, int], Awaitable[Heartbeat]], heartbeat_s: float,
                 on_command: Callable[[bytes], Awaitable[object]], counters: Counters | None = None,
                 log: logging.Logger | logging.LoggerAdapter | None = None,
                 identity: GatewayIdentity | None = None) -> None:
        self.cfg = cfg
        self.identity = identity  # seals every birth, will, heartbeat, ack and event (contract.signed)
        self.gateway_id = gateway_id
        self.store = store
        self.birth = birth
        self.heartbeat = heartbeat
        self.heartbeat_s = heartbeat_s
        self.on_command = on_command
        self.counters = counters or Counters()
        self.log = log or logging.getLogger("dozor.gateway.uplink")
        self.session = 0
        self.connected = asyncio.Event()
        self.t_state = topics.gw(gateway_id, topics.GwChannel.STATE)
        self.t_cmd = topics.gw(gateway_id, topics.GwChannel.CMD)
        self.t_ack = topics.gw(gateway_id, topics.GwChannel.ACK)
        self.t_heartbeat = topics.gw(gateway_id, topics.GwChannel.HEARTBEAT)
        self._client: aiomqtt.Client | None = None
        self._acks: deque[Ack] = deque()
        self.t_event = topics.gw(gateway_id, topics.GwChannel.EVENT)
        self._ack_wake = asyncio.Event()
        self._acks_idle = asyncio.Event()
        self._acks_idle.set()
        self._bulk_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        # Hooks for the telemetry drain (e.g. ``on_connected.append(telemetry.on_connected)``,
        # ``on_disconnected.append(telemetry.pause)``); a failing hook is logged and counted.
        self.on_connected: list[Callable[[], object]] = []
        self.on_disconnected: list[Callable[[], object]] = []
        # Extra topics (QoS 1), subscribed again on every connect: topic -> handler(payload).
        self.subscriptions: dict[str, Callable[[bytes], object]] = {}

    # ------------------------------------------------------------ public API
    def publish_ack(self, ack: Ack) -> None:
        """Queue an ack for immediate publication (kept in order across reconnects)."""
        if len(self._acks) >= MAX_PENDING_ACKS:
            self._acks.popleft()
            self.counters.inc("ack_dropped_overflow")
        self._acks.append(ack)  # sealed when it is published, with that session's next counter
        self._acks_idle.clear()
        self._ack_wake.set()

    async def publish_bulk(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Lower-priority publish for the telemetry drain: waits for the ack lane to be empty, one at a time.

        Raises UplinkError if the uplink is down or drops during the publish (the caller keeps the data).
        """
        async with self._bulk_lock:
            await self._acks_idle.wait()
            client = self._client
            if client is None or not self.connected.is_set():
                raise UplinkError("uplink not connected")
            if topic == self.t_event:
                payload = self._seal_event(payload)
            try:
                await client.publish(topic, payload, qos=qos)
            except aiomqtt.MqttError as exc:
                raise UplinkError(f"publish failed: {exc}") from None
            self.counters.inc("mqtt_bulk_published")

    def republish_birth(self) -> None:
        """Publish the (retained) birth again in the current session; while down, the next connect does it."""
        client = self._client
        if client is None or not self.connected.is_set():
            return
        self._spawn(self._publish_birth(client), "birth")

    async def _publish_birth(self, client: aiomqtt.Client) -> None:
        await client.publish(self.t_state, self._bytes(self.birth(self.session)), qos=1, retain=True)
        self.counters.inc("mqtt_births_updated")

    def _bytes(self, msg: GatewayState | Heartbeat | Ack | Event) -> bytes:
        return self.identity.seal(msg) if self.identity is not None else msg.to_bytes()

    def _seal_event(self, payload: bytes) -> bytes:
        """Events wait in the outbox as plain JSON; they are sealed with the counter of the session that sends them."""
        if self.identity is None:
            return payload
        try:
            return self.identity.seal(decode(Event, payload))
        except MalformedMessage:  # a damaged stored event goes out unsigned: the hub counts and drops it
            self.counters.inc("event_seal_errors")
            return payload

    @property
    def pending_acks(self) -> int:
        return len(self._acks)

    # ------------------------------------------------------------ supervisor
    async def run(self) -> None:
        delay = self.cfg.reconnect_min_s
        while True:
            try:
                self.session = self.store.next_session()
            except ReplayStoreError as exc:  # e.g. disk full: keep going, the hub still orders sessions
                self.session += 1
                self.counters.inc("session_persist_errors")
                self.log.error("cannot persist the session counter: %s", exc)
            death = GatewayState(gateway=self.gateway_id, state="offline", session=self.session, ts=time.time())
            if self.identity is not None:
                self.identity.new_session(self.session)
            will = aiomqtt.Will(self.t_state, self.identity.will(death) if self.identity else death.to_bytes(),
                                qos=1, retain=True)
            self.counters.inc("mqtt_connect_attempts")
            try:
                async with aiomqtt.Client(
                    self.cfg.host, self.cfg.port, username=self.cfg.username, password=self.cfg.password,
                    identifier=f"dozor-gw-{self.gateway_id}", will=will, keepalive=self.cfg.keepalive_s,
                    clean_session=False, protocol=aiomqtt.ProtocolVersion.V311, timeout=10,
                    tls_params=aiomqtt.TLSParameters(**tls) if (tls := self.cfg.tls_files()) else None,
                    logger=logging.getLogger("dozor.gateway.mqtt"),
                ) as client:
                    delay = self.cfg.reconnect_min_s
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                self.counters.inc("mqtt_disconnects")
                self.log.warning("uplink down (session %d): %s; retrying in ≤%.1fs", self.session, exc, delay)
            except Exception:  # never let a bug end the supervisor
                self.counters.inc("uplink_errors")
                self.log.exception("uplink crashed (session %d); restarting", self.session)
            finally:
                was_up = self.connected.is_set()
                self.connected.clear()
                self._client = None
                await self._cancel_tasks()
                if was_up:
                    self._hooks(self.on_disconnected)
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(self.cfg.reconnect_max_s, delay * 2)

    async def _serve(self, client: aiomqtt.Client) -> None:
        self._client = client
        await client.subscribe(self.t_cmd, qos=1)
        for topic in self.subscriptions:
            await client.subscribe(topic, qos=1)
        await client.publish(self.t_state, self._bytes(self.birth(self.session)), qos=1, retain=True)
        self.counters.inc("mqtt_births")
        self.connected.set()
        self.log.info("uplink up: %s:%d session %d", self.cfg.host, self.cfg.port, self.session)
        self._spawn(self._drain_acks(client), "acks")
        self._spawn(self._heartbeats(client), "heartbeat")
        self._hooks(self.on_connected)
        async for message in client.messages:
            self._dispatch(message)

    def _hooks(self, hooks: list[Callable[[], object]]) -> None:
        for hook in hooks:
            try:
                hook()
            except Exception:
                self.counters.inc("uplink_hook_errors")
                self.log.exception("uplink hook %r failed", hook)

    def _dispatch(self, message: aiomqtt.Message) -> None:
        """Message callback: never raises; bad input is counted and handled by the executor."""
        try:
            topic = message.topic.value
            handler = self.subscriptions.get(topic) if topic != self.t_cmd else None
            if topic != self.t_cmd and handler is None:
                self.counters.inc("mqtt_unexpected_topic")
                return
            payload = message.payload
            if isinstance(payload, str):
                payload = payload.encode()
            elif not isinstance(payload, bytes | bytearray):
                payload = b"" if payload is None else str(payload).encode()
            if handler is not None:
                self.counters.inc("mqtt_sub_messages")
                try:
                    handler(bytes(payload))
                except Exception:
                    self.counters.inc("mqtt_handler_errors")
                    self.log.exception("handler for %s failed", topic)
                return
            self.counters.inc("mqtt_cmd_messages")
            self._spawn(self._run_command(bytes(payload)), "command")
        except Exception:
            self.counters.inc("mqtt_callback_errors")
            self.log.exception("message dispatch failed")

    async def _run_command(self, payload: bytes) -> None:
        try:
            await self.on_command(payload)
        except Exception:
            self.counters.inc("command_handler_errors")
            self.log.exception("command handler failed")

    async def _drain_acks(self, client: aiomqtt.Client) -> None:
        """Publish queued acks at once, pipelined (paho hands them to the socket in call order, so
        the broker sees them in order); whatever was not PUBACKed stays queued, in order, for the
        next connection (the hub treats a repeated ack as a no-op)."""
        while True:
            while self._acks:
                batch = list(self._acks)
                results = await asyncio.gather(*(client.publish(self.t_ack, self._bytes(a), qos=1) for a in batch),
                                               return_exceptions=True)
                done = 0
                for r in results:
                    if isinstance(r, BaseException):
                        break
                    done += 1
                for _ in range(done):
                    self._acks.popleft()
                self.counters.inc("mqtt_acks_published", done)
                failed = next((r for r in results if isinstance(r, BaseException)), None)
                if failed is not None:
                    raise failed
            self._acks_idle.set()
            self._ack_wake.clear()
            await self._ack_wake.wait()

    async def _heartbeats(self, client: aiomqtt.Client) -> None:
        """Heartbeats on a fixed cadence (a slow status read does not stretch the interval)."""
        loop = asyncio.get_running_loop()
        seq = 0
        next_at = loop.time()
        while True:
            try:
                hb = await self.heartbeat(self.session, seq)
                await client.publish(self.t_heartbeat, self._bytes(hb), qos=0)
                self.counters.inc("mqtt_heartbeats")
                seq += 1
            except aiomqtt.MqttError:
                return
            except Exception:
                self.counters.inc("heartbeat_errors")
                self.log.exception("heartbeat failed")
            next_at = max(next_at + self.heartbeat_s, loop.time())
            await asyncio.sleep(next_at - loop.time())

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=f"uplink {self.gateway_id} {name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and not isinstance(
                task.exception(), aiomqtt.MqttError):
            self.counters.inc("uplink_task_errors")
            self.log.error("uplink task %s failed: %r", task.get_name(), task.exception())

    async def _cancel_tasks(self) -> None:
        # Command tasks are not ours to cancel: a command keeps driving devices through an outage.
        tasks = [t for t in self._tasks if not t.get_name().endswith(" command")]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
