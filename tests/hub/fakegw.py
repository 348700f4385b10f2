"""A protocol-level gateway peer for hub tests: a real paho MQTT client on the real broker.

It publishes births (with a last-will), heartbeats, verifies every command's JWS with the hub's public
key exactly as a gateway must (signature, audience, expiry, replay), and answers acks according to its
``behaviour``. It is a test peer, not a mock: everything goes through Mosquitto.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract import topics
from contract.command import CommandClaims, token_sha256, verify_command
from contract.errors import CommandRejected
from contract.models import (
    Ack,
    AckStage,
    Action,
    DeviceInfo,
    DeviceKind,
    DeviceState,
    DeviceStatus,
    GatewayState,
    Heartbeat,
    Signal,
)
from tests.gwident import Sealer, enroll


class FakeGateway:
    def __init__(self, port: int, gateway: str, hub_keys: dict[str, Ed25519PublicKey],
                 devices: list[tuple[str, DeviceKind]], *, behaviour: str = "ok", session: int = 1,
                 heartbeat_s: float = 10.0, tenant: str = "") -> None:
        self.port = port
        self.topics = topics.Topics(tenant)  # a named tenant's gateway: dozor/v1/<tenant>/gw/...
        self.tenant = tenant
        self.id = gateway
        self.keys = hub_keys
        self.devices = dict(devices)
        self.behaviour = behaviour  # ok | silent | accept_only | reject:<r> | fail:<r> | fail_once:<r>
        self.session = session
        self.heartbeat_s = heartbeat_s
        self.commands: list[CommandClaims] = []
        self.rejected: list[CommandRejected] = []
        self.acks: list[Ack] = []
        self.seen: set[str] = set()
        self.lock = threading.Lock()
        self.client: paho.Client | None = None
        self.seq = 0
        self.sealer = Sealer(gateway, session=session)  # signs like gateway/identity.py (contract.signed)

    # ------------------------------------------------------------ connection
    def state(self, state: str) -> GatewayState:
        return GatewayState(gateway=self.id, state=state, session=self.session, ts=time.time(),
                            heartbeat_s=self.heartbeat_s,
                            devices=tuple(DeviceInfo(id=d, kind=k) for d, k in self.devices.items())
                            if state == "online" else ())

    def start(self, *, session: int | None = None) -> FakeGateway:
        if session is not None:
            self.session = session
        enroll(self.id)  # into every hub running in this test process
        with self.sealer.lock:
            self.sealer.session, self.sealer.ctr = self.session, 0
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"fake-{self.tenant}{self.id}-{self.session}",
                        protocol=paho.MQTTv311)
        c.will_set(self.topics.gw(self.id, "state"), self.sealer.will(self.state("offline")), qos=1, retain=True)
        c.on_message = self._on_message
        connected = threading.Event()

        def on_connect(client, userdata, flags, reason, props) -> None:
            # also after paho's automatic reconnect (e.g. a broker restart): subscribe and re-announce
            client.subscribe(self.topics.gw(self.id, "cmd"), qos=1)
            client.publish(self.topics.gw(self.id, "state"), self.sealer(self.state("online")), qos=1, retain=True)
            connected.set()

        c.on_connect = on_connect
        c.reconnect_delay_set(0.1, 0.5)
        c.connect("127.0.0.1", self.port, keepalive=30)
        c.loop_start()
        if not connected.wait(10):
            raise RuntimeError("fake gateway could not connect")
        self.client = c
        return self

    def crash(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker publishes the last-will."""
        assert self.client is not None
        self.client.loop_stop()
        self.client.socket().close()
        self.client = None

    def stop(self) -> None:
        """A clean disconnect: the DISCONNECT is on the wire before the network loop stops. Stopping the loop
        right after ``disconnect()`` (as this did until the twenty-ninth session) could drop the connection with
        the packet still queued on a loaded machine, and the broker then published the last-will (a flaky
        "last-will" where a test expected the hub's own heartbeat timeout)."""
        if self.client is not None:
            gone = threading.Event()
            self.client.on_disconnect = lambda *a, **k: gone.set()
            connected = self.client.is_connected()  # not while paho retries a lost broker: nothing to send then
            self.client.disconnect()
            if connected:
                gone.wait(5.0)
            self.client.loop_stop()
            self.client = None

    def heartbeat(self, states: dict[str, DeviceState] | None = None, faults: dict[str, tuple] | None = None,
                  session: int | None = None) -> None:
        assert self.client is not None
        self.seq += 1
        hb = Heartbeat(gateway=self.id, session=self.session if session is None else session, seq=self.seq,
                       ts=time.time(), uptime_s=1.0,
                       devices=tuple(DeviceStatus(id=d, state=(states or {}).get(d, DeviceState.IDLE),
                                                  faults=(faults or {}).get(d, ())) for d in self.devices))
        self.client.publish(self.topics.gw(self.id, "heartbeat"), self.sealer(hb), qos=0)

    def publish_raw(self, channel: str, payload: bytes) -> None:
        assert self.client is not None
        self.client.publish(self.topics.gw(self.id, channel), payload, qos=1).wait_for_publish(5)

    # ------------------------------------------------------------ commands
    def _ack(self, jti: str, alert: str | None, stage: AckStage, devices: tuple[str, ...], reason: str | None = None,
             token: bytes | None = None) -> None:
        ack = Ack(gateway=self.id, cmd=jti, alert=alert, stage=stage, devices=devices, reason=reason, ts=time.time(),
                  token_sha256=token_sha256(token) if token else None)
        with self.lock:
            self.acks.append(ack)
        if self.client is not None:
            self.client.publish(self.topics.gw(self.id, "ack"), self.sealer(ack, session=True), qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        token = msg.payload
        try:
            claims = verify_command(token, keys=self.keys, audience=self.id, now=time.time())
            if claims.jti in self.seen:
                raise CommandRejected("replayed", jti=claims.jti, alert=claims.alert)
        except CommandRejected as exc:
            with self.lock:
                self.rejected.append(exc)
            self._ack(exc.jti or token_sha256(token), exc.alert, AckStage.REJECTED, (), exc.reason.value, token)
            return
        self.seen.add(claims.jti)
        with self.lock:
            self.commands.append(claims)
        behaviour = self.behaviour
        if behaviour == "silent":
            return
        if behaviour.startswith("reject_once:"):  # like a gateway that just restarted uncleanly
            self.behaviour = "ok"
            self._ack(claims.jti, claims.alert, AckStage.REJECTED, (), behaviour.split(":", 1)[1], token)
            return
        if behaviour.startswith("reject:"):
            self._ack(claims.jti, claims.alert, AckStage.REJECTED, (), behaviour.split(":", 1)[1], token)
            return
        self._ack(claims.jti, claims.alert, AckStage.ACCEPTED, claims.targets)
        if behaviour == "accept_only":
            return
        if behaviour.startswith("fail_once:"):
            self.behaviour = "ok"
            self._ack(claims.jti, claims.alert, AckStage.FAILED, claims.targets, behaviour.split(":", 1)[1])
            return
        if behaviour.startswith("fail:"):
            self._ack(claims.jti, claims.alert, AckStage.FAILED, claims.targets, behaviour.split(":", 1)[1])
            return
        if claims.act is Action.STOP or claims.params.signal is Signal.SILENT_TEST:
            self._ack(claims.jti, claims.alert, AckStage.DONE, claims.targets)
            return
        sirens = tuple(d for d in claims.targets if self.devices.get(d) is DeviceKind.SIREN)
        speakers = tuple(d for d in claims.targets if self.devices.get(d) is DeviceKind.SPEAKER)
        if sirens:
            self._ack(claims.jti, claims.alert, AckStage.SOUNDING, sirens)
        if speakers:
            self._ack(claims.jti, claims.alert, AckStage.PLAYING, speakers)

    def commands_for(self, alert: str) -> list[CommandClaims]:
        with self.lock:
            return [c for c in self.commands if c.alert == alert]
