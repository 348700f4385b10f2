"""The hub's MQTT connection (``runtime.mqtt`` over paho, MQTT 3.1.1): reconnects with ``runtime.backoff``,
a retained HubState ``online`` birth and an ``offline`` last-will, and a dispatcher that decodes every gateway
channel and never raises: malformed payloads are counted per channel and reason, logged (rate limited: one
line per reason and interval, with a count) and dropped. A PUBACK overdue by ``stuck_puback_s`` (e.g. for a
command) closes the session as dead and reconnects. One way in: every message goes through ``_on_message``
(then ``Dispatcher.dispatch``); one way out: ``publish`` / ``publish_nowait``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from contract import topics
from contract.codecs import telemetry as telemetry_wire
from contract.errors import MalformedMessage
from contract.models import Ack, Event, GatewayState, Heartbeat, HubState, TelemetryBatch, decode
from hub.config import MqttSettings
from hub.metrics import HubMetrics
from hub.sendfirst import SendFirst
from runtime.backoff import Backoff
from runtime.mqtt import BrokerList, MqttLinkError, MqttParams, MqttSession, Will
from runtime.ratelog import RateLimitedLog

log = logging.getLogger(__name__)
client_log = logging.getLogger("hub.mqtt.client")

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
HELD_BIRTHS_MAX = 256  # births of not-yet-enrolled gateways kept for a re-check (hub.mqtt.Dispatcher)
HELD_BIRTH_MAX_BYTES = 32 * 1024
INGEST_READ_BURST = 32  # packets per readable event on the ingest connection (runtime.mqtt: saves a loop trip each)
SIGNED = frozenset({"state", "heartbeat", "ack", "event"})  # sealed by the gateway (contract.signed, hub.gwtrust)


class Dispatcher:
    """topic + payload -> validated model -> handlers. Sync and O(1) per message; never raises."""

    def __init__(self, metrics: HubMetrics, topics: topics.Topics = topics.DEFAULT) -> None:
        self.metrics = metrics
        self.topics = topics  # this hub's tenant: another tenant's topic is foreign (counted, dropped)
        self.handlers: dict[str, list[Handler]] = {ch: [] for ch in MODELS}
        self.verifier = None  # hub.gwtrust.Verifier: only verified, fresh gateway messages reach the handlers
        self._received: dict[str, object] = {}
        self._log = RateLimitedLog(log, 10.0)  # a flood of junk costs one line per reason per 10 s
        # gateway -> (topic, wire) of a birth refused because the gateway was not enrolled yet: it is checked
        # again before that gateway's first message that verifies, so a gateway enrolled after it came up still
        # gets its devices known (a birth is sent once per connection). Bounded: topics are attacker input.
        self.held_births: dict[str, tuple[str, bytes]] = {}

    def on(self, channel: str, handler: Handler) -> None:
        """Register a handler for a gateway channel (e.g. hub/ingest/ adds telemetry and event handlers)."""
        self.handlers[topics.GwChannel(channel).value].append(handler)

    def dispatch(self, topic: str, payload: bytes) -> None:
        channel = "unknown"
        try:
            parsed = self.topics.parse(topic)
            channel = parsed.channel
            if parsed.kind != "gw" or channel not in MODELS:
                return  # hub/zone states (our own retained messages) and commands: not for us
            counter = self._received.get(channel)
            if counter is None:  # labels() takes a lock and builds a key: once per channel, not per message
                counter = self._received[channel] = self.metrics.mqtt_messages.labels(channel)
            counter.inc()
            verifier = self.verifier if channel in SIGNED else None
            wire = payload
            if verifier is not None and (payload := verifier.open(parsed.ident, channel, payload)) is None:
                if channel == "state" and wire and parsed.ident not in verifier.gateways:
                    self._hold_birth(parsed.ident, topic, wire)
                return  # unsigned or unverifiable: counted and logged by the verifier
            if verifier is not None and self.held_births and parsed.ident in self.held_births:
                held = self.held_births.pop(parsed.ident)  # enrolled since: its birth goes first, unless this
                if channel != "state":  # message is a newer state of its own
                    self.dispatch(*held)
            msg = telemetry_wire.decode(payload, topic=topic) if channel == "telemetry" else \
                decode(MODELS[channel], payload, topic=topic)  # telemetry: version 1 or 2 (compact)
            if getattr(msg, "gateway", parsed.ident) != parsed.ident:
                raise MalformedMessage("gateway_mismatch", topic=topic,
                                       detail=f"payload says {getattr(msg, 'gateway', '')!r}")
            if verifier is not None and not verifier.admit(parsed.ident, channel, getattr(msg, "session", None),
                                                           getattr(msg, "ctr", None)):
                return  # replayed, stale session or implausible jump: counted by the verifier
        except MalformedMessage as exc:
            self.metrics.malformed.labels(channel, exc.reason).inc()
            self._log.warning(f"{channel}:{exc.reason}", "%s", exc)
            return
        for handler in self.handlers[channel]:
            try:
                handler(msg)
            except Exception:  # never raise inside a message callback: log, count, keep going
                self.metrics.malformed.labels(channel, "handler_error").inc()
                log.exception("handler for %s failed on %s", channel, topic)


    def release_held(self) -> int:
        """Dispatch the held births of gateways the verifier knows by now (called after each trust refresh), so
        a gateway enrolled just after its birth arrived is known at once, not only at its next signed message
        (which may itself be refused while the hub knows no session of it). Returns how many were released."""
        verifier = self.verifier
        ready = [gw for gw in self.held_births if verifier is not None and gw in verifier.gateways]
        for gw in ready:
            self.dispatch(*self.held_births.pop(gw))
        return len(ready)

    def _hold_birth(self, gateway: str, topic: str, wire: bytes) -> None:
        if len(wire) > HELD_BIRTH_MAX_BYTES:
            return
        if gateway not in self.held_births and len(self.held_births) >= HELD_BIRTHS_MAX:
            self.held_births.pop(next(iter(self.held_births)))  # the oldest goes
        self.held_births.pop(gateway, None)
        self.held_births[gateway] = (topic, wire)


class HubMqtt:
    """One supervised connection. ``control=True``: the hub's voice (HubState birth and last-will,
    commands, zone states); otherwise a listen-only connection (client id suffixed ``-ingest``)."""

    def __init__(self, cfg: MqttSettings, dispatcher: Dispatcher, metrics: HubMetrics, *,
                 keys: tuple[str, ...] = (), on_connect: Callable[[], Awaitable[None]] | None = None,
                 on_refresh: Callable[[], Awaitable[None]] | None = None,
                 channels: tuple[topics.GwChannel, ...] = SUBSCRIBED, control: bool = True,
                 defer_ack: Callable[[Callable[[], object] | None], None] | None = None,
                 instance: str | None = None) -> None:
        """``defer_ack``: acknowledge QoS 1 messages only when the application says so. Each message's PUBACK
        is handed to ``defer_ack(send)``; the ingest calls ``send()`` once the message's lines are committed
        to its durable spool, so a hub crash before that makes the broker redeliver (persistent session).
        ``instance`` (an ingest connection with ``[mqtt] share_group``): this instance's own client id suffix, and
        the subscriptions go to the shared group, so the broker splits the telemetry among the hub instances."""
        self.cfg = cfg if control else cfg.for_ingest()  # its own certificate where identities are bound
        self.topics = dispatcher.topics  # the tenant's topic prefix (contract/topics.py)
        self.channels = channels
        self.control = control
        self.client_id = cfg.client_id if control else f"{cfg.client_id[:57]}-ingest"
        self.share = f"$share/{cfg.share_group}/" if instance is not None and cfg.share_group else ""
        if self.share:
            self.client_id = f"{cfg.client_id[:48]}-ingest-{instance[:8]}"
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.keys = keys
        self.on_connect = on_connect
        self.on_refresh = on_refresh  # re-publishes the retained zone states and audit head (a clustered broker)
        self.defer_ack = defer_ack if cfg.persistent_session else None  # without a session nothing is redelivered
        self.session: MqttSession | None = None
        self.connected = asyncio.Event()
        self.backoff = Backoff(cfg.reconnect_min_s, cap=cfg.reconnect_max_s, healthy_s=cfg.healthy_s)
        self.brokers = BrokerList(cfg.endpoints, cfg.url_order)  # a clustered broker: on to the next node on loss
        self._log = RateLimitedLog(log, 10.0)

    def _state(self, state: str) -> bytes:
        return HubState(state=state, ts=time.time(), keys=self.keys).to_bytes()

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Publish and wait for the PUBACK; False (never an exception) when not connected or it failed."""
        session = self.session
        if session is None:
            return False
        try:
            await session.publish(topic, payload, qos=qos, retain=retain, timeout=self.cfg.publish_timeout_s)
            return True
        except MqttLinkError as exc:
            self._log.warning("publish-failed", "publish to %s failed: %s", topic, exc)
            return False

    def publish_nowait(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Hand a message to the socket without waiting for its PUBACK (the hot path for commands: the
        gateway's ack is the confirmation that matters; a PUBACK that never comes still closes the session
        after ``stuck_puback_s``)."""
        session = self.session
        if session is None:
            return False
        try:
            session.publish_nowait(topic, payload, qos=qos, retain=retain)
            return True
        except MqttLinkError as exc:
            self._log.warning("publish-failed", "publish to %s failed: %s", topic, exc)
            return False

    def flush_writes(self) -> None:
        """Write what the client has queued to the socket now, instead of at the loop's next writer
        callback: commands are on the wire before any other task (hooks, API) gets the CPU."""
        if self.session is not None:
            self.session.flush_writes()

    async def run(self) -> None:
        """Connect, subscribe and dispatch forever; reconnect with the shared jittered, capped backoff."""
        kind = "control" if self.control else "ingest"
        while True:
            try:
                await self._session()
            except MqttLinkError as exc:
                self.metrics.mqtt_disconnects.labels(kind).inc()
                log.warning("MQTT %s:%d (%s): %s", *self.brokers.current, kind, exc)
            except Exception as exc:  # noqa: BLE001 - a bug (e.g. in on_connect) must not end the connection for good
                self.metrics.mqtt_disconnects.labels(kind).inc()
                self._log.error(f"crash:{type(exc).__name__}", "MQTT %s session failed: %r; reconnecting", kind, exc,
                                exc_info=True)
            finally:
                self.session = None
                self.connected.clear()
                if len(self.brokers) > 1:
                    self.brokers.failed()
                    self.metrics.mqtt_broker_switches.labels(kind).inc()
            await asyncio.sleep(self.backoff.down())

    send_first: SendFirst | None = None  # the control connection's gate (hub/sendfirst.py), set by the hub

    def _on_message(self, topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
        """Every message the hub receives (loop thread): dispatch (on the control connection, after the commands
        of a phase going out: hub/sendfirst.py), then hand its PUBACK to the ingest."""
        gate = self.send_first
        if gate is None or not gate.offer(topic, payload):
            self.dispatcher.dispatch(topic, payload)
        defer, session = self.defer_ack, self.session_for_acks
        if defer is not None and session is not None:
            try:
                defer((lambda s=session, m=mid, q=qos: s.ack(m, q)) if qos > 0 else None)
            except Exception:  # noqa: BLE001 - the ingest's problem must not break the connection
                self._log.error("defer-ack", "deferring a PUBACK failed", exc_info=True)

    session_for_acks: MqttSession | None = None

    async def _session(self) -> None:
        cfg = self.cfg
        will = Will(self.topics.hub_state, self._state("offline")) if self.control else None
        host, port = self.brokers.current
        params = MqttParams(host, port, self.client_id, username=cfg.username, password=cfg.password,
                            keepalive_s=cfg.keepalive_s, clean_session=not cfg.persistent_session, will=will,
                            tls=cfg.tls_files(), connect_timeout_s=cfg.connect_timeout_s,
                            publish_timeout_s=cfg.publish_timeout_s, stuck_puback_s=cfg.stuck_puback_s,
                            max_inflight=0, manual_ack=self.defer_ack is not None,
                            read_burst=1 if self.control else INGEST_READ_BURST)
        session = MqttSession(params, on_message=self._on_message, log=client_log)
        self.session_for_acks = session if self.defer_ack is not None else None
        async with session:
            self.backoff.up()
            await session.subscribe([(f"{self.share}{self.topics.sub_gateways(ch)}", 1) for ch in self.channels])
            self.session = session
            self.metrics.mqtt_connects.labels("control" if self.control else "ingest").inc()
            log.info("MQTT connected to %s:%d as %s", host, port, self.client_id)
            if self.control:
                await session.publish(self.topics.hub_state, self._state("online"), qos=1, retain=True)
            self.connected.set()
            if self.on_connect is not None:
                await self.on_connect()
            if self.control and len(self.brokers) > 1 and cfg.retained_refresh_s > 0:
                await self._refresh_retained(session)
            await session.wait_closed()

    async def _refresh_retained(self, session: MqttSession) -> None:
        """On a clustered broker: the retained state (hub online, zone states, audit head) again once the session
        has been healthy for ``healthy_s``, then every ``retained_refresh_s``. A cluster may lose a retained write
        made while it elects new leaders after losing a node, and still ack it (NATS 2.9 logs "unable to store
        retained message"). Returns (raising MqttLinkError) only when the session ends."""
        wait = self.cfg.healthy_s
        while True:
            try:
                await asyncio.wait_for(session.wait_closed(), wait)
            except TimeoutError:
                await session.publish(self.topics.hub_state, self._state("online"), qos=1, retain=True)
                if self.on_refresh is not None:
                    await self.on_refresh()
                self.metrics.retained_refreshes.inc()
            wait = self.cfg.retained_refresh_s

    async def close(self) -> None:
        """Announce a clean shutdown (the last-will only fires on an unclean one)."""
        if self.session is not None and self.control:
            await self.publish(self.topics.hub_state, self._state("offline"), 1, True)
