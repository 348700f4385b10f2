"""A lite simulated city for city-scale load (``dozor sim city --lite``): thousands of gateways in one process.

Each ``LiteGateway`` is a gateway as the hub and the broker see it: its own MQTT connection (``runtime.mqtt``,
paho driven by this process's one event loop; client id ``dozor-gw-<id>``, persistent session, a signed retained
last-will), its own Ed25519 identity key (``<state dir>/<id>/identity-key``, enrolled at the hub by the layer
above through ``enroll``), a signed retained birth listing its sirens, signed heartbeats, and signed acks, each
with the session and per-session counter of ``contract.signed``. Commands are verified and executed by
``simulators.city_lite_sirens`` with the contract's own ``verify_command``.

What it leaves out, on purpose: the pty, the Modbus RTU bus and the siren controllers (``simulators.city`` runs
real gateway instances with those, and tests/e2e measures that path), the telemetry outbox and acks on disk (acks
wait in memory until their PUBACK; a lite gateway that dies loses them, and the hub's re-sends cover that).
Heartbeats are jittered (``LiteGateway._heartbeats``), so a process's gateways do not all beat in one tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import topics
from contract.broker import BrokerAddress
from contract.command import b64url, key_id, public_key_from_b64, public_raw
from contract.models import Ack, AckStage, Action, DeviceInfo, DeviceKind, GatewayState, Heartbeat
from contract.signed import WILL_CTR, seal
from runtime import keyfiles
from runtime.backoff import Backoff
from runtime.mqtt import MqttLinkError, MqttParams, MqttSession, Will
from simulators.city import CityPlan
from simulators.city_lite_sirens import LiteSirens

log = logging.getLogger("dozor.sim.city_lite")
SW_VERSION = "dozor-sim-lite/0.1"
STATE_FILE = "lite-state.json"  # {"session": n, "floor": t}
MAX_TIMED = 1000  # activation commands per gateway whose "sounding" ack is still to be timed


@dataclass
class LiteSettings:
    broker: BrokerAddress
    hub_keys: dict[str, str]  # kid -> base64url raw Ed25519 public key
    spinup_s: float = 0.0
    heartbeat_s: float = 10.0
    max_activation_s: int = 900
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    publish_timeout_s: float = 10.0


class LiteGateway:
    def __init__(self, gid: str, zone: str, sirens: list[str], state_dir: Path, settings: LiteSettings,
                 connects: asyncio.Semaphore) -> None:
        self.id, self.zone, self.settings, self.connects = gid, zone, settings, connects
        self.dir = state_dir
        self.key: Ed25519PrivateKey = keyfiles.load_or_create(state_dir / "identity-key",
                                                              what="lite gateway identity key")[0]
        self.kid = key_id(self.key.public_key())
        self.public_b64 = b64url(public_raw(self.key.public_key()))
        self.session, floor, restarted = self._state()
        self.ctr = 0
        self.counters: Counter = Counter()
        self.sirens = LiteSirens(gid, sirens, keys={k: public_key_from_b64(v) for k, v in settings.hub_keys.items()},
                                 emit=self._emit, counters=self.counters, spinup_s=settings.spinup_s,
                                 max_activation_s=settings.max_activation_s, floor=floor,
                                 not_before=time.time() if restarted else None)
        self.t_state, self.t_cmd = topics.gw(gid, "state"), topics.gw(gid, "cmd")
        self.t_ack, self.t_heartbeat = topics.gw(gid, "ack"), topics.gw(gid, "heartbeat")
        self.started = time.monotonic()
        self.connected = asyncio.Event()
        self._acks: deque[Ack] = deque()
        self._wake = asyncio.Event()
        self._received: dict[str, float] = {}  # jti -> when the activation command arrived (monotonic)
        self.sounding_ms: list[float] = []  # command in -> its "sounding" ack PUBACKed by the broker

    def _state(self) -> tuple[int, int, bool]:
        """(last session, floor, restarted): the state file survives a restart, the replay store does not."""
        path = self.dir / STATE_FILE
        try:
            doc = json.loads(path.read_text())
            return int(doc["session"]), int(doc["floor"]), True
        except FileNotFoundError:
            return 0, int(time.time()), False

    def _next_session(self) -> int:
        self.session += 1
        self.ctr = 0
        tmp = self.dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps({"session": self.session, "floor": self.sirens.floor}))
        os.replace(tmp, self.dir / STATE_FILE)
        return self.session

    # ------------------------------------------------------------ signing (contract.signed)
    def _seal(self, msg: GatewayState | Heartbeat | Ack) -> bytes:
        self.ctr += 1
        update: dict[str, int] = {"ctr": self.ctr}
        if isinstance(msg, Ack):
            update["session"] = self.session
        return seal(msg.model_copy(update=update).to_bytes(), self.key, self.kid)

    def birth(self) -> GatewayState:
        return GatewayState(gateway=self.id, state="online", session=self.session, ts=time.time(), sw=SW_VERSION,
                            heartbeat_s=self.settings.heartbeat_s, zone=self.zone, identity_key=self.public_b64,
                            keys=tuple(sorted(self.settings.hub_keys)),
                            devices=tuple(DeviceInfo(id=s, kind=DeviceKind.SIREN, bus="lite", address=n + 1)
                                          for n, s in enumerate(self.sirens.sirens)))

    def _emit(self, ack: Ack) -> None:
        self._acks.append(ack)
        self._wake.set()

    def _on_message(self, topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
        if topic != self.t_cmd:
            self.counters["mqtt_unexpected_topic"] += 1
            return
        received = time.monotonic()
        claims = self.sirens.handle(bytes(payload))
        if claims is not None and claims.act is Action.ACTIVATE:
            self._received[claims.jti] = received
            if len(self._received) > MAX_TIMED:
                del self._received[next(iter(self._received))]

    # ------------------------------------------------------------ the reconnect loop
    async def run(self) -> None:
        s = self.settings
        backoff = Backoff(0.2, cap=5.0, healthy_s=10.0)
        endpoints = s.broker.endpoints
        node = 0
        while True:
            self._next_session()
            death = GatewayState(gateway=self.id, state="offline", session=self.session, ts=time.time(), ctr=WILL_CTR)
            host, port = endpoints[node % len(endpoints)]
            params = MqttParams(host, port, f"dozor-gw-{self.id}", username=s.username, password=s.password,
                                keepalive_s=s.keepalive_s, clean_session=False,
                                will=Will(self.t_state, seal(death.to_bytes(), self.key, self.kid)),
                                tls=s.broker.tls_files(), connect_timeout_s=s.connect_timeout_s,
                                publish_timeout_s=s.publish_timeout_s)
            self.counters["mqtt_connect_attempts"] += 1
            try:
                async with self.connects:
                    mqtt = await MqttSession(params, on_message=self._on_message).__aenter__()
                try:
                    backoff.up()
                    await self._serve(mqtt)
                finally:
                    await mqtt.__aexit__(None, None, None)
            except MqttLinkError as exc:
                self.counters["mqtt_disconnects"] += 1
                log.warning("[%s] uplink down (session %d): %s", self.id, self.session, exc)
                node += 1
            except Exception:  # never let a bug end the loop: count it, log it, reconnect
                self.counters["uplink_errors"] += 1
                log.exception("[%s] uplink crashed (session %d)", self.id, self.session)
            finally:
                self.connected.clear()
            await asyncio.sleep(backoff.down())

    async def _serve(self, mqtt: MqttSession) -> None:
        await mqtt.subscribe([(self.t_cmd, 1)])
        await mqtt.publish(self.t_state, self._seal(self.birth()), qos=1, retain=True)
        self.counters["mqtt_births"] += 1
        self.connected.set()
        tasks = [asyncio.ensure_future(self._drain_acks(mqtt)), asyncio.ensure_future(self._heartbeats(mqtt)),
                 asyncio.ensure_future(mqtt.wait_closed())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # MqttLinkError (the link died or a publish failed), or a bug
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t

    async def _drain_acks(self, mqtt: MqttSession) -> None:
        """Publish acks in order, pipelined; an ack leaves the queue only after its PUBACK."""
        while True:
            if not self._acks:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(self._acks)
            results = await asyncio.gather(*(mqtt.publish(self.t_ack, self._seal(a), qos=1) for a in batch),
                                           return_exceptions=True)
            done = next((n for n, r in enumerate(results) if isinstance(r, BaseException)), len(results))
            now = time.monotonic()
            for _ in range(done):
                ack = self._acks.popleft()
                if ack.stage is AckStage.SOUNDING and (t := self._received.pop(ack.cmd, None)) is not None:
                    self.sounding_ms.append((now - t) * 1000)
            self.counters["mqtt_acks_published"] += done
            if done < len(results):
                raise results[done]

    async def _heartbeats(self, mqtt: MqttSession) -> None:
        """Soon after the birth (a real gateway beats at once), then every 0.9-1.0 x heartbeat_s: the subtractive
        jitter never stretches an interval past the hub's 2 x heartbeat_s timeout, and it drifts the phases of
        a process's gateways apart so they do not all beat in the same tick."""
        period = self.settings.heartbeat_s
        await asyncio.sleep(random.uniform(0.0, 0.2) * period)
        seq = 0
        while True:
            hb = Heartbeat(gateway=self.id, session=self.session, seq=seq, ts=time.time(),
                           uptime_s=time.monotonic() - self.started, devices=self.sirens.statuses(),
                           counters=dict(self.counters))
            await mqtt.publish(self.t_heartbeat, self._seal(hb), qos=0)
            self.counters["mqtt_heartbeats"] += 1
            seq += 1
            await asyncio.sleep(period * random.uniform(0.9, 1.0))


@dataclass
class LiteCity:
    """``plan``'s gateways as lite gateways in this process. ``enroll([(gateway id, public key b64), ...])`` runs
    once, before any gateway connects (the layer above registers the identity keys at the hub)."""

    plan: CityPlan
    settings: LiteSettings
    state_dir: Path
    enroll: Callable[[list[tuple[str, str]]], Any] | None = None
    max_connecting: int = 32  # connection attempts in flight at once (a fleet's start, a broker's return)
    gateways: list[LiteGateway] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    lags_ms: list[float] = field(default_factory=list)  # how late the loop woke a 100 ms sleep, once per sleep
    _lag: asyncio.Task | None = field(default=None, init=False, repr=False)

    async def start(self) -> LiteCity:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        connects = asyncio.Semaphore(self.max_connecting)
        sirens = [f"siren-{k + 1}" for k in range(self.plan.sirens_per_gateway)]
        for i in range(self.plan.gateways):
            gid = self.plan.gateway_id(i)
            (self.state_dir / gid).mkdir(parents=True, exist_ok=True, mode=0o700)
            self.gateways.append(LiteGateway(gid, self.plan.zone_of(i), sirens, self.state_dir / gid, self.settings,
                                             connects))
        if self.enroll is not None:
            await asyncio.to_thread(self.enroll, [(g.id, g.public_b64) for g in self.gateways])
        self.tasks = [asyncio.create_task(g.run(), name=f"lite gateway {g.id}") for g in self.gateways]
        self._lag = asyncio.create_task(self._watch_lag(), name="lite city loop lag")
        log.info("lite city up: %d gateways, %d sirens", len(self.gateways), self.plan.sirens_total)
        return self

    async def _watch_lag(self) -> None:
        """The loop's lag (a starved process answers late even when its own work is small): bounded samples."""
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.1)
            self.lags_ms.append((loop.time() - t - 0.1) * 1000)
            if len(self.lags_ms) > 100_000:
                del self.lags_ms[:50_000]

    async def stop(self) -> None:
        if self._lag is not None:
            self._lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for g in self.gateways:
            g.sirens.close()
        self.tasks.clear()

    async def __aenter__(self) -> LiteCity:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def online(self) -> int:
        return sum(1 for g in self.gateways if g.connected.is_set())

    def sounding(self) -> int:
        return sum(g.sirens.sounding for g in self.gateways)

    def counters(self) -> Counter:
        total: Counter = Counter()
        for g in self.gateways:
            total.update(g.counters)
        return total

    def timings(self) -> dict[str, dict[str, float | int | None]]:
        """The simulator's own share of the hub's confirm time: ``sounding_ms`` (an activation command read from
        the socket -> its "sounding" ack's PUBACK) and ``loop_lag_ms`` (how late this process's loop runs)."""
        return {"sounding_ms": _spread([m for g in self.gateways for m in g.sounding_ms]),
                "loop_lag_ms": _spread(self.lags_ms)}

    def crashed(self) -> list[str]:
        """Gateways whose run() ended on its own (it must run until cancelled)."""
        return [g.id for g, t in zip(self.gateways, self.tasks, strict=True) if t.done() and not t.cancelled()]


def _spread(values: list[float]) -> dict[str, float | int | None]:
    ms = sorted(values)
    if not ms:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    return {"n": len(ms), "p50": round(ms[len(ms) // 2], 1), "p99": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 1),
            "max": round(ms[-1], 1)}
