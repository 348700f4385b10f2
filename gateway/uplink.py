"""The gateway's own supervised MQTT uplink (``runtime.mqtt`` over paho, MQTT 3.1.1).

- Reconnects forever with ``runtime.backoff`` (jittered, capped at ``reconnect_max_s``, reset once a session
  has been healthy for ``healthy_s``), so after the broker returns the gateway is back within about
  ``reconnect_max_s + connect time``, every run. Nothing raised below ends the loop; it is counted and logged
  (the "uplink down" warning at most once per 10 s, with the count). The "uplink up" line that ends an outage
  reports its schedule: "after N failed attempts in X s; longest retry wait W s, cap C s" (tests/chaos assert it).
- Every long-lived task of a session (acks, heartbeats, births) runs under one ``runtime.supervise``
  ``Supervisor``: a task that fails is counted (``uplink_task_failures.<task>``), logged once with its cause,
  and its failure forces a reconnect of the session. A publish that times out (``publish_timeout_s``) fails
  its task, and any PUBACK overdue by ``stuck_puback_s`` closes the session as dead (``runtime.mqtt``).
- Before every connection attempt the persisted ``session`` counter goes up and the retained last-will
  is ``GatewayState(offline, session)``. On connect: subscribe to the cmd topic and to every topic in
  ``subscriptions`` (e.g. the zone's retained public state, whose handler runs in the message callback
  and must never raise; a handler that does is counted ``mqtt_handler_errors``), publish the retained
  birth ``GatewayState(online, session, devices, keys, heartbeat_s)``, start heartbeats. When a device's
  info changes (a reflashed node reports a new firmware version) ``republish_birth`` sends the birth again
  with the same session, so the hub's registry sees the new ``DeviceInfo.fw`` at once.
- Acks are durable: ``publish_ack`` writes the ack to the outbox's priority lane (stream ``ack``, fsynced)
  before it returns, i.e. before the executor reports the device action done; the ack task publishes them
  and deletes each only after its PUBACK. A gateway killed anywhere in between sends them after restart.
- Priority: acks have their own task that publishes at once; bulk traffic (the telemetry outbox) goes
  through ``publish_bulk``, which only sends when no ack is waiting and keeps at most one bulk message in
  flight, so commands and acks never queue behind a backlog.
- One way out and one way in: every outgoing payload goes through ``_publish`` and every incoming message
  through ``_dispatch`` (the places to sign and verify payload bytes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from contract import topics
from contract.errors import MalformedMessage
from contract.models import Ack, Event, GatewayState, Heartbeat, decode
from gateway.config import MqttSection
from gateway.counters import Counters
from gateway.errors import GatewayError, ReplayStoreError
from gateway.identity import GatewayIdentity
from gateway.outbox import Lane, Outbox, OutboxError
from gateway.replay import StateStore
from runtime.backoff import Backoff
from runtime.mqtt import BrokerList, MqttLinkError, MqttParams, MqttSession, Will
from runtime.ratelog import RateLimitedLog
from runtime.supervise import Supervisor, TaskFailed

MAX_PENDING_ACKS = 10_000
ACK_STREAM = "ack"


@dataclass
class Outage:
    """The reconnect schedule of one outage, reported on the "uplink up" line that ends it: failed attempts and
    the longest backoff wait drawn (never above the cap, ``reconnect_max_s``)."""

    since: float  # monotonic: when the link went down (or the process started)
    failed: int = 0
    longest_wait_s: float = 0.0


class UplinkError(GatewayError):
    """The uplink is down (publish_bulk callers keep their data and retry later)."""


class Uplink:
    def __init__(self, cfg: MqttSection, gateway_id: str, *, store: StateStore,
                 birth: Callable[[int], GatewayState],
                 heartbeat: Callable[[int, int], Awaitable[Heartbeat]], heartbeat_s: float,
                 on_command: Callable[[bytes], Awaitable[object]], counters: Counters | None = None,
                 log: logging.Logger | logging.LoggerAdapter | None = None, outbox: Outbox | None = None,
                 identity: GatewayIdentity | None = None, topics: topics.Topics = topics.DEFAULT) -> None:
        self.cfg = cfg
        self.identity = identity  # seals every birth, will, heartbeat, ack and event (contract.signed)
        self.t_event = topics.gw(gateway_id, "event")  # the tenant's topics (contract/topics.py)
        self.gateway_id = gateway_id
        self.store = store
        self.birth = birth
        self.heartbeat = heartbeat
        self.heartbeat_s = heartbeat_s
        self.on_command = on_command
        self.counters = counters or Counters()
        self.log = log or logging.getLogger("dozor.gateway.uplink")
        self.outbox = outbox
        self.session = 0
        self.connected = asyncio.Event()
        self.t_state = topics.gw(gateway_id, "state")
        self.t_cmd = topics.gw(gateway_id, "cmd")
        self.t_ack = topics.gw(gateway_id, "ack")
        self.t_heartbeat = topics.gw(gateway_id, "heartbeat")
        self.backoff = Backoff(cfg.reconnect_min_s, cap=cfg.reconnect_max_s, healthy_s=cfg.healthy_s)
        self.brokers = BrokerList(cfg.endpoints, cfg.url_order)  # a clustered broker: on to the next node on loss
        self._mqtt: MqttSession | None = None
        self._outage: Outage | None = None
        self._down_log = RateLimitedLog(self.log, 10.0)
        self._sup: Supervisor | None = None
        self._acks: deque[bytes] = deque()  # only when the outbox cannot take an ack (no outbox, disk error)
        self._stored_acks = outbox.count(ACK_STREAM) if outbox is not None else 0  # from before a restart too
        self._ack_wake = asyncio.Event()
        self._acks_idle = asyncio.Event()
        self._update_idle()
        self._bulk_lock = asyncio.Lock()
        self._commands: set[asyncio.Task] = set()
        # Hooks for the telemetry drain (e.g. ``on_connected.append(telemetry.on_connected)``,
        # ``on_disconnected.append(telemetry.pause)``); a failing hook is logged and counted.
        self.on_connected: list[Callable[[], object]] = []
        self.on_disconnected: list[Callable[[], object]] = []
        # Extra topics (QoS 1), subscribed again on every connect: topic -> handler(payload).
        self.subscriptions: dict[str, Callable[[bytes], object]] = {}

    # ------------------------------------------------------------ public API
    def publish_ack(self, ack: Ack) -> None:
        """Store an ack durably (outbox priority lane) and wake the ack task; kept in order across reconnects
        and restarts. Returns once the ack is on disk."""
        payload = ack.to_bytes()
        if self.outbox is not None:
            try:
                self.outbox.put(ACK_STREAM, self.t_ack, payload, lane=Lane.PRIORITY)
                self._stored_acks += 1
                self.counters.inc("acks_stored")
                self._wake_acks()
                return
            except OutboxError as exc:  # e.g. disk full: keep it in memory rather than lose it now
                self.counters.inc("ack_persist_errors")
                self.log.error("cannot store an ack durably (%s); holding it in memory", exc)
        if len(self._acks) >= MAX_PENDING_ACKS:
            self._acks.popleft()
            self.counters.inc("ack_dropped_overflow")
        self._acks.append(payload)
        self._wake_acks()

    async def publish_bulk(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Lower-priority publish for the telemetry drain: waits for the ack lane to be empty, one at a time.

        Raises UplinkError if the uplink is down or drops during the publish (the caller keeps the data).
        """
        async with self._bulk_lock:
            await self._acks_idle.wait()
            mqtt = self._mqtt
            if mqtt is None or not self.connected.is_set():
                raise UplinkError("uplink not connected")
            if topic == self.t_event:
                payload = self._seal_stored(Event, payload)
            try:
                await self._publish(mqtt, topic, payload, qos)
            except MqttLinkError as exc:
                raise UplinkError(f"publish failed: {exc}") from None
            self.counters.inc("mqtt_bulk_published")

    def republish_birth(self) -> None:
        """Publish the (retained) birth again in the current session; while down, the next connect does it."""
        mqtt, sup = self._mqtt, self._sup
        if mqtt is None or sup is None or not self.connected.is_set():
            return
        sup.start(f"birth-{time.monotonic_ns()}", lambda: self._publish_birth(mqtt, update=True), restart=False)

    def _bytes(self, msg: GatewayState | Heartbeat | Ack | Event) -> bytes:
        return self.identity.seal(msg) if self.identity is not None else msg.to_bytes()

    def _seal_stored(self, model: type[Ack] | type[Event], payload: bytes) -> bytes:
        """Acks and events wait in the outbox as plain JSON; they are sealed when they leave, with the session
        and counter of the connection that sends them (contract.signed)."""
        if self.identity is None:
            return payload
        try:
            return self.identity.seal(decode(model, payload))
        except MalformedMessage:  # a damaged stored record goes out unsigned: the hub counts and drops it
            self.counters.inc("seal_errors")
            return payload

    @property
    def pending_acks(self) -> int:
        return len(self._acks) + self._stored_acks

    def tasks_alive(self) -> dict[str, bool]:
        """Long-lived tasks of the current session (empty while down)."""
        return {k: v for k, v in (self._sup.alive() if self._sup else {}).items() if not k.startswith("birth-")}

    # ------------------------------------------------------------ the one way out, the one way in
    async def _publish(self, mqtt: MqttSession, topic: str, payload: bytes, qos: int = 1,
                       retain: bool = False) -> None:
        """Every payload the gateway sends goes through here (exact bytes; returns after the PUBACK)."""
        await mqtt.publish(topic, payload, qos=qos, retain=retain, timeout=self.cfg.publish_timeout_s)

    def _dispatch(self, topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
        """Every message the gateway receives comes through here. Never raises; bad input is counted."""
        try:
            handler = self.subscriptions.get(topic) if topic != self.t_cmd else None
            if topic != self.t_cmd and handler is None:
                self.counters.inc("mqtt_unexpected_topic")
                return
            payload = bytes(payload)
            if handler is not None:
                self.counters.inc("mqtt_sub_messages")
                try:
                    handler(payload)
                except Exception:
                    self.counters.inc("mqtt_handler_errors")
                    self.log.exception("handler for %s failed", topic)
                return
            self.counters.inc("mqtt_cmd_messages")
            task = asyncio.create_task(self._run_command(payload), name=f"uplink {self.gateway_id} command")
            self._commands.add(task)  # not cancelled on a disconnect: a command keeps driving devices
            task.add_done_callback(self._commands.discard)
        except Exception:
            self.counters.inc("mqtt_callback_errors")
            self.log.exception("message dispatch failed")

    # ------------------------------------------------------------ the reconnect loop
    def _params(self, will: bytes) -> MqttParams:
        c = self.cfg
        host, port = self.brokers.current
        return MqttParams(host, port, f"dozor-gw-{self.gateway_id}", username=c.username, password=c.password,
                          keepalive_s=c.keepalive_s, clean_session=False, will=Will(self.t_state, will),
                          tls=c.tls_files(), connect_timeout_s=c.connect_timeout_s,
                          publish_timeout_s=c.publish_timeout_s, stuck_puback_s=c.stuck_puback_s)

    async def run(self) -> None:
        outage = Outage(time.monotonic())  # the process starts "down": its first connect ends the first outage
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
            will = self.identity.will(death) if self.identity is not None else death.to_bytes()
            self.counters.inc("mqtt_connect_attempts")
            try:
                async with MqttSession(self._params(will), on_message=self._dispatch,
                                       log=logging.getLogger("dozor.gateway.mqtt")) as mqtt:
                    self.backoff.up()
                    self._outage, outage = outage, None
                    await self._serve(mqtt)
            except (MqttLinkError, TaskFailed) as exc:
                self.counters.inc("mqtt_disconnects")
                if isinstance(exc, TaskFailed) or "PUBACK" in str(exc):
                    self.counters.inc("mqtt_dead_link_reconnects")
                # one line per 10 s while the broker stays away (with the count), not one per retry
                self._down_log.warning("down", "uplink down (session %d): %s", self.session, exc)
            except Exception:  # never let a bug end the loop
                self.counters.inc("uplink_errors")
                self.log.exception("uplink crashed (session %d); restarting", self.session)
            finally:
                was_up = self.connected.is_set()
                self.connected.clear()
                self._mqtt = None
                if was_up:
                    self._hooks(self.on_disconnected)
                if len(self.brokers) > 1:
                    self.brokers.failed()
                    self.counters.inc("mqtt_broker_switches")
            if outage is None:
                outage = Outage(time.monotonic())
            else:
                outage.failed += 1
            delay = self.backoff.down()
            outage.longest_wait_s = max(outage.longest_wait_s, delay)
            await asyncio.sleep(delay)

    async def _serve(self, mqtt: MqttSession) -> None:
        await mqtt.subscribe([(self.t_cmd, 1), *((t, 1) for t in self.subscriptions)])
        await self._publish_birth(mqtt)
        self._mqtt = mqtt
        self.connected.set()
        o = self._outage
        self.log.info("uplink up: %s:%d session %d%s", *self.brokers.current, self.session,
                      f" (after {o.failed} failed attempts in {time.monotonic() - o.since:.2f} s; longest retry wait "
                      f"{o.longest_wait_s:.3f} s, cap {self.backoff.cap:g} s)" if o is not None and o.failed else "")
        async with Supervisor(f"uplink {self.gateway_id}", log=self.log,
                              on_failure=lambda name: self.counters.inc(f"uplink_task_failures.{name}")) as sup:
            self._sup = sup
            try:
                sup.start("acks", lambda: self._drain_acks(mqtt), restart=False)
                sup.start("heartbeat", lambda: self._heartbeats(mqtt), restart=False)
                if len(self.brokers) > 1:
                    sup.start("rebirth", lambda: self._rebirth(mqtt), restart=False)
                self._hooks(self.on_connected)
                closed = asyncio.ensure_future(mqtt.wait_closed())
                failed = asyncio.ensure_future(sup.wait())
                try:
                    done, _ = await asyncio.wait({closed, failed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for f in (closed, failed):
                        f.cancel()
                for f in done:
                    f.result()  # raises MqttLinkError or TaskFailed
            finally:
                self._sup = None

    async def _publish_birth(self, mqtt: MqttSession, *, update: bool = False) -> None:
        await self._publish(mqtt, self.t_state, self._bytes(self.birth(self.session)), 1, retain=True)
        self.counters.inc("mqtt_births_updated" if update else "mqtt_births")

    def _hooks(self, hooks: list[Callable[[], object]]) -> None:
        for hook in hooks:
            try:
                hook()
            except Exception:
                self.counters.inc("uplink_hook_errors")
                self.log.exception("uplink hook %r failed", hook)

    async def _run_command(self, payload: bytes) -> None:
        try:
            await self.on_command(payload)
        except Exception:
            self.counters.inc("command_handler_errors")
            self.log.exception("command handler failed")

    # ------------------------------------------------------------ acks
    def _wake_acks(self) -> None:
        self._update_idle()
        self._ack_wake.set()

    def _update_idle(self) -> None:
        if self.pending_acks:
            self._acks_idle.clear()
        else:
            self._acks_idle.set()

    async def _drain_acks(self, mqtt: MqttSession) -> None:
        """Publish stored acks at once, pipelined (paho writes them in call order, so the broker sees them in
        order); each is deleted from the outbox only after its PUBACK. A failure releases the rest, in order,
        for the next session and fails this task (the session reconnects); the hub treats a repeat as a no-op."""
        while True:
            self._ack_wake.clear()
            items = self.outbox.batch(64 * 1024, 100, lanes=[Lane.PRIORITY], stream=ACK_STREAM) \
                if self.outbox is not None and self._stored_acks else []
            memory = list(self._acks)
            if not items and not memory:
                self._stored_acks = 0 if self.outbox is None else self.outbox.count(ACK_STREAM)
                self._update_idle()
                if self.pending_acks:  # stored acks we cannot take now (should not happen): look again soon
                    await asyncio.sleep(0.1)
                else:
                    await self._ack_wake.wait()
                continue
            payloads = [self._seal_stored(Ack, i.payload) for i in items] + [self._seal_stored(Ack, p) for p in memory]
            try:
                results = await asyncio.gather(*(self._publish(mqtt, self.t_ack, p, 1) for p in payloads),
                                               return_exceptions=True)
            except asyncio.CancelledError:  # the session ended under us: these go again next session
                if self.outbox is not None:
                    self.outbox.release([i.id for i in items])
                raise
            done = next((n for n, r in enumerate(results) if isinstance(r, BaseException)), len(results))
            stored_done = [i.id for i in items[:done]]
            if self.outbox is not None:
                if stored_done:
                    self.outbox.ack(stored_done)
                self.outbox.release([i.id for i in items[done:]])
            self._stored_acks = max(0, self._stored_acks - len(stored_done))
            for _ in range(max(0, done - len(items))):
                self._acks.popleft()
            self.counters.inc("mqtt_acks_published", done)
            self._update_idle()
            if done < len(results):
                raise results[done]

    async def _rebirth(self, mqtt: MqttSession) -> None:
        """On a clustered broker: the birth once more when the session has been healthy for ``healthy_s``. A
        cluster may lose a retained write made while it elects new leaders after losing a node, and still ack it
        (NATS 2.9 logs "unable to store retained message"); the second birth restores the retained state."""
        await asyncio.sleep(self.cfg.healthy_s)
        await self._publish_birth(mqtt, update=True)
        await asyncio.Event().wait()  # a supervised task does not return

    async def _heartbeats(self, mqtt: MqttSession) -> None:
        """Heartbeats on a fixed cadence (a slow status read does not stretch the interval)."""
        loop = asyncio.get_running_loop()
        seq = 0
        next_at = loop.time()
        while True:
            try:
                hb = await self.heartbeat(self.session, seq)
            except Exception:
                self.counters.inc("heartbeat_errors")
                self.log.exception("heartbeat failed")
            else:
                await self._publish(mqtt, self.t_heartbeat, self._bytes(hb), 0)
                self.counters.inc("mqtt_heartbeats")
                seq += 1
            next_at = max(next_at + self.heartbeat_s, loop.time())
            await asyncio.sleep(next_at - loop.time())
