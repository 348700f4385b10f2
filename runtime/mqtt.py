"""The MQTT client layer of the gateway and the hub: paho-mqtt 2.x driven by the asyncio loop, through
paho's public API only (socket callbacks, ``loop_read``/``loop_write``/``loop_misc``, ``manual_ack_set``,
``ack``). One connection per ``MqttSession``; reconnecting is the owner's loop (with ``runtime.backoff``).

    async with MqttSession(params, on_message=handle) as s:       # CONNECT .. CONNACK, or MqttLinkError
        await s.subscribe([("dozor/v1/gw/+/ack", 1)])
        await s.publish(topic, payload, qos=1, timeout=2.0)       # returns after the PUBACK
        s.publish_nowait(topic, payload)                           # hand to the socket, do not wait
        await s.wait_closed()                                      # raises MqttLinkError when the link dies

Dead links are found three ways: the socket closes; paho's keepalive (no PINGRESP within ``keepalive``);
and ``stuck_puback_s``: a QoS 1 publish without PUBACK for that long closes the session (``PubackStalled``),
because a broker that stops acknowledging while TCP stays open is as dead as a closed socket.

A clustered broker is several nodes: ``BrokerList`` says which one the next ``MqttSession`` connects to. The
owner's reconnect loop calls ``failed()`` after a connection that did not come up or was lost, so it stays on
a node that works and moves on (after its backoff wait) from one that does not:

    nodes = BrokerList([("mq1", 1883), ("mq2", 1883)], order="in_order")
    while True:
        host, port = nodes.current
        try: ...MqttSession(replace(params, host=host, port=port))...
        except MqttLinkError: pass
        nodes.failed()
        await asyncio.sleep(backoff.down())

``on_message(topic, payload, qos, mid, retain)`` runs in the loop thread for every message and must not
raise (a raise is logged and counted in ``callback_errors``). With ``manual_ack=True`` the owner sends each
QoS 1 message's PUBACK itself (``ack(mid, qos)``), e.g. after the message is durably stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import ssl
import threading
import time
from collections.abc import Callable, Sequence

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from runtime.mqtt_params import (  # noqa: F401 - re-exported: the layer's public names
    BrokerList,
    MqttLinkError,
    MqttParams,
    OnMessage,
    PubackStalled,
    PublishTimeout,
    Will,
)
from runtime.supervise import reap


class MqttSession:
    def __init__(self, params: MqttParams, *, on_message: OnMessage | None = None,
                 log: logging.Logger | logging.LoggerAdapter | None = None) -> None:
        self.params = params
        self.on_message = on_message
        self.log = log or logging.getLogger("dozor.runtime.mqtt")
        self.counters = {"callback_errors": 0, "publish_timeouts": 0, "puback_stalls": 0, "watch_repairs": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._closed: asyncio.Future[None] | None = None
        self._connack: asyncio.Future[None] | None = None
        self._pending: dict[int, tuple[asyncio.Future[None] | None, float]] = {}
        self._subs: dict[int, asyncio.Future[None]] = {}
        self._misc: asyncio.Task | None = None
        self._watch: asyncio.Task | None = None
        self._sock = None
        self.received = 0  # messages in this session
        self._probe: select.poll | None = None  # the socket's error state, read once per misc tick
        self.read_events = 0  # readable events handled (``read_burst`` > 1)
        self._client = self._make_client()
        self._on_readable = self._read_burst if params.read_burst > 1 else self._client.loop_read

    def _make_client(self) -> paho.Client:
        p = self.params
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=p.client_id, clean_session=p.clean_session,
                        protocol=paho.MQTTv311)
        c.connect_timeout = p.connect_timeout_s
        c.max_inflight_messages_set(p.max_inflight)
        c.max_queued_messages_set(0)
        if p.username is not None:
            c.username_pw_set(p.username, p.password)
        if p.will is not None:
            c.will_set(p.will.topic, p.will.payload, qos=p.will.qos, retain=p.will.retain)
        if p.tls is not None:
            c.tls_set(ca_certs=p.tls.get("ca_certs"), certfile=p.tls.get("certfile"), keyfile=p.tls.get("keyfile"),
                      cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        if p.manual_ack:
            c.manual_ack_set(True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        return c

    # ---- lifecycle -------------------------------------------------------------------------------------------

    async def __aenter__(self) -> MqttSession:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._closed = self._loop.create_future()
        self._connack = self._loop.create_future()
        p = self.params
        try:
            await self._loop.run_in_executor(None, self._client.connect, p.host, p.port, p.keepalive_s)
            await asyncio.wait_for(asyncio.shield(self._connack), p.connect_timeout_s + 1)
        except (OSError, ValueError, TimeoutError, MqttLinkError) as exc:
            await self._teardown()
            if isinstance(exc, MqttLinkError):
                raise
            raise MqttLinkError(f"connect to {p.host}:{p.port} failed: {exc or type(exc).__name__}") from None
        except BaseException:
            await self._teardown()
            raise
        self._misc = asyncio.create_task(self._misc_loop(), name=f"mqtt {p.client_id} misc")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._closed is not None and not self._closed.done():
            with contextlib.suppress(Exception):
                self._client.disconnect()
                self._client.loop_write()
            try:
                await asyncio.wait_for(asyncio.shield(self._closed), 1.0)
            except (TimeoutError, MqttLinkError):
                self.log.debug("MQTT %s: no clean close within 1 s", self.params.client_id)
            except asyncio.CancelledError:  # ours (the wait is shielded): tear down, then stop
                await self._teardown()
                raise
        await self._teardown()

    async def _teardown(self) -> None:
        for task in (self._misc, self._watch):
            await reap(task)
        sock = self._sock
        if sock is not None and self._loop is not None:
            self._unwatch(sock)
            self._sock = self._probe = None
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._lost(MqttLinkError("session closed"))

    @property
    def is_connected(self) -> bool:
        return self._closed is not None and not self._closed.done() and self._connack is not None \
            and self._connack.done() and not self._connack.exception()

    async def wait_closed(self) -> None:
        """Wait until the connection is lost; raises the MqttLinkError that ended it."""
        assert self._closed is not None
        await asyncio.shield(self._closed)

    def _lost(self, exc: MqttLinkError) -> None:
        for fut in (self._closed, self._connack):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()  # marked retrieved; waiters still get it
        pending, self._pending = self._pending, {}
        subs, self._subs = self._subs, {}
        for fut in [f for f, _ in pending.values()] + list(subs.values()):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()  # a caller that timed out no longer waits: no "never retrieved" noise

    async def _misc_loop(self) -> None:
        """paho's housekeeping (keepalive pings, retries) and the PUBACK watchdog."""
        stuck = self.params.stuck_puback_s
        while self._client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._probe_socket()
            if stuck > 0 and self._pending:
                oldest = min(t for _, t in self._pending.values())
                if time.monotonic() - oldest > stuck:
                    self.counters["puback_stalls"] += 1
                    self.log.warning("MQTT %s: a PUBACK is %.1fs overdue; closing the session as dead",
                                     self.params.client_id, time.monotonic() - oldest)
                    self._lost(PubackStalled(f"no PUBACK for {stuck:g}s"))
                    self._client.disconnect()
                    return
            await asyncio.sleep(min(1.0, stuck / 4) if stuck > 0 else 1.0)
        self._lost(MqttLinkError("connection lost"))

    def _probe_socket(self) -> None:
        """A socket error or hang-up that the event loop's watcher did not deliver: read, so paho sees it.

        uvloop (libuv) answers a poll error (a TCP reset) by closing the fd's watcher, without calling the reader
        again (uvloop issue 552). If the reader had returned before reaching the reset (paho reads one packet
        per call), the messages still in the socket and the reset itself would wait for the keepalive timeout,
        and the next ``add_writer`` for the fd raises RuntimeError. Found in a soak: a hub's alert start failed
        that way and its sessions stayed mute for 30 s. One ``poll(0)`` per misc tick finds it within a second."""
        if self._probe is None or self._sock is None:
            return
        events = self._probe.poll(0)
        if events and events[0][1] & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
            self._repair(self._sock, "error or hang-up on the socket")

    def _repair(self, sock, why: str) -> None:
        """Watch ``sock`` afresh and read it now: paho then reads what waits or learns that the link is gone."""
        self.counters["watch_repairs"] += 1
        self.log.info("MQTT %s: %s; reading it directly", self.params.client_id, why)
        assert self._loop is not None
        self._unwatch(sock)
        try:
            self._loop.add_reader(sock, self._on_readable)
            if self._client.want_write():
                self._loop.add_writer(sock, self._client.loop_write)
        except (RuntimeError, ValueError, OSError) as exc:
            self._lost(MqttLinkError(f"the event loop cannot watch the socket: {exc}"))
        self._client.loop_read()

    def _read_burst(self) -> None:
        """One readable event: up to ``read_burst`` packets while each read brings a whole message (never blocks:
        the socket is non-blocking, and a read that finds no bytes or only part of a packet ends the burst; the
        rest comes at the next event, in order). Decrypted TLS bytes are always read on. No ``poll`` per packet
        to ask whether more bytes wait: the next read finds out, and in a backlog it finds a message (a ``poll(0)``
        per message was ~5 % of the hub's ingest thread in ``bench.ingest``; docs/benchmarks.md)."""
        self.read_events += 1
        client, sock = self._client, self._sock
        pending = getattr(sock, "pending", None)  # ssl.SSLSocket
        budget = self.params.read_burst
        while True:
            before = self.received
            if client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or self._sock is not sock:
                return
            if pending is not None and pending():
                continue
            budget -= 1
            if budget <= 0 or self.received == before:  # nothing (more) to read, a partial or another packet
                return

    def _unwatch(self, sock) -> None:
        """Stop watching ``sock``. A watcher the loop closed on its own (see ``_probe_socket``) is taken out of
        the loop all the same; what ``remove_*`` still raises for it is counted."""
        assert self._loop is not None
        for remove in (self._loop.remove_reader, self._loop.remove_writer):
            try:
                remove(sock)
            except (RuntimeError, ValueError, OSError) as exc:
                self.counters["watch_repairs"] += 1
                self.log.debug("MQTT %s: %s: %s", self.params.client_id, remove.__name__, exc)

    # ---- paho callbacks (loop thread, except socket_open/register_write during connect) ----------------------

    def _call(self, fn: Callable[[], object]) -> None:
        if threading.get_ident() == self._thread:
            fn()
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(fn)

    def _on_socket_open(self, client: paho.Client, userdata: object, sock) -> None:
        def attach() -> None:
            self._sock = sock
            assert self._loop is not None
            probe = select.poll()
            probe.register(sock, select.POLLERR | select.POLLHUP)
            self._probe = probe
            try:
                self._loop.add_reader(sock, self._on_readable)
            except RuntimeError as exc:  # a watcher of an earlier socket with this fd, closed by the loop
                self._repair(sock, f"watching the new socket failed ({exc})")
        self._call(attach)

    def _on_socket_close(self, client: paho.Client, userdata: object, sock) -> None:
        def detach() -> None:
            if self._loop is not None:
                self._unwatch(sock)
            self._sock = self._probe = None
        self._call(detach)

    def _on_register_write(self, client: paho.Client, userdata: object, sock) -> None:
        def add() -> None:
            if self._loop is not None and self._sock is sock:
                try:
                    self._loop.add_writer(sock, client.loop_write)
                except RuntimeError as exc:  # the loop closed the fd's watcher (see _probe_socket)
                    self._repair(sock, f"watching the socket for writing failed ({exc})")
        self._call(add)

    def _on_unregister_write(self, client: paho.Client, userdata: object, sock) -> None:
        self._call(lambda: self._loop.remove_writer(sock) if self._loop is not None else None)

    def _on_connect(self, client: paho.Client, userdata: object, flags, reason_code, properties) -> None:
        def done() -> None:
            if self._connack is None or self._connack.done():
                return
            if reason_code.is_failure:
                self._lost(MqttLinkError(f"broker refused the connection: {reason_code}"))
            else:
                self._connack.set_result(None)
        self._call(done)

    def _on_disconnect(self, client: paho.Client, userdata: object, flags, reason_code, properties) -> None:
        self._call(lambda: self._lost(MqttLinkError(f"disconnected: {reason_code}")))

    def _on_publish(self, client: paho.Client, userdata: object, mid: int, reason_code, properties) -> None:
        entry = self._pending.pop(mid, None)
        if entry is not None and entry[0] is not None and not entry[0].done():
            entry[0].set_result(None)

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, reason_codes, properties) -> None:
        fut = self._subs.pop(mid, None)
        if fut is None or fut.done():
            return
        bad = [rc for rc in reason_codes if rc.is_failure]
        if bad:
            fut.set_exception(MqttLinkError(f"subscription refused: {bad[0]}"))
        else:
            fut.set_result(None)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        self.received += 1
        if self.on_message is None:
            return
        try:
            self.on_message(msg.topic, msg.payload, msg.qos, msg.mid, bool(msg.retain))
        except Exception:  # never raise into paho: count it, log it
            self.counters["callback_errors"] += 1
            self.log.exception("MQTT message callback failed on %s", msg.topic)

    # ---- operations ------------------------------------------------------------------------------------------

    def _check(self) -> None:
        if not self.is_connected:
            raise MqttLinkError("not connected")

    def publish_nowait(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Queue a message for the socket and return its mid (the PUBACK is still watched for stalls)."""
        self._check()
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttLinkError(f"publish to {topic} refused: {paho.error_string(info.rc)}")
        self._check()  # the socket may have turned out dead while the message was queued (see _repair)
        if qos > 0 and not info.is_published():
            self._pending.setdefault(info.mid, (None, time.monotonic()))
        return info.mid

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                      timeout: float | None = None) -> None:  # noqa: ASYNC109 - a PUBACK deadline, per call
        """Publish and wait for the PUBACK (QoS 1) or the socket (QoS 0); PublishTimeout after ``timeout``."""
        self._check()
        assert self._loop is not None
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttLinkError(f"publish to {topic} refused: {paho.error_string(info.rc)}")
        self._check()  # the socket may have turned out dead while the message was queued (see _repair)
        self.flush_writes()  # to the socket now: no loop wake-up for "writable" per message (gateway CPU)
        if qos == 0 or info.is_published():
            return
        fut = self._loop.create_future()
        self._pending[info.mid] = (fut, time.monotonic())
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout or self.params.publish_timeout_s)
        except TimeoutError:
            self.counters["publish_timeouts"] += 1
            raise PublishTimeout(f"no PUBACK for {topic} within {timeout or self.params.publish_timeout_s:g}s") \
                from None

    async def subscribe(self, subs: Sequence[tuple[str, int]],
                        timeout: float | None = None) -> None:  # noqa: ASYNC109 - a SUBACK deadline
        self._check()
        assert self._loop is not None
        rc, mid = self._client.subscribe(list(subs))
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttLinkError(f"subscribe refused: {paho.error_string(rc)}")
        fut = self._loop.create_future()
        self._subs[mid] = fut
        # A persistent session's queued messages come before the SUBACK: while they keep arriving the link is
        # alive, and giving up would only have them all delivered again (a hub behind a long backlog would
        # never get its SUBACK). No message and no SUBACK for a whole timeout: the link is dead.
        while True:
            seen = self.received
            try:
                await asyncio.wait_for(asyncio.shield(fut), timeout or self.params.publish_timeout_s)
                return
            except TimeoutError:
                if self.received == seen:
                    raise MqttLinkError("no SUBACK in time") from None

    def ack(self, mid: int, qos: int) -> None:
        """Send the PUBACK of a received QoS 1 message (``manual_ack=True``); a no-op once disconnected."""
        if qos > 0 and self.is_connected:
            self._client.ack(mid, qos)

    def flush_writes(self) -> None:
        """Write what is queued to the socket now rather than at the loop's next writer callback."""
        if self.is_connected and self._client.want_write():
            self._client.loop_write()

    @property
    def pending_pubacks(self) -> int:
        return len(self._pending)
