"""Helpers for the microphone-on-a-gateway tests: configs, a stand-in hub on the real broker, scenes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt

from contract import topics
from contract.codecs import telemetry as telemetry_wire
from contract.models import (
    Ack,
    Event,
    GatewayState,
    Mode,
    Reading,
    Signal,
    ZoneState,
    ZoneStatus,
    decode,
)
from contract.signed import Unverified
from gateway.app import Gateway
from gateway.config import GatewayConfig
from simulators.noise_scene import Scene, generate
from tests.gateway.helpers import GW, make_config
from tests.gwident import Unsealer

WAIT_S = 20.0  # an upper bound for a condition; the tests assert counts and order, never durations
ZONE = "zone-1"  # what tests.gateway.helpers puts in [gateway] zone
QUIET = {"exhaust": 0, "legal": 0, "horn": 0.0, "cd_siren": 0.0, "ev_siren": 0.0, "wind": 0.0, "rain": 0.0}


# seeds of simulators.noise_scene picked (tests/noise_gateway) for what the tests need; re-pick them with the
# offline analysis when the scene family or the classifier model changes
ONE_EXHAUST_SEED = 2  # scene(ONE_EXHAUST_SEED, 24.0, exhaust=1): one enforceable exhaust, 103 dB at 13.4 s
SIREN_SEED = 16  # scene(SIREN_SEED, 24.0, exhaust=2, cd_siren=1.0): the local detector alone does not suppress


def scene(seed: int, duration_s: float, **mix: float) -> Scene:
    return generate(seed, duration_s=duration_s, distance_m=7.5, mix={**QUIET, **mix})


def mic_toml(dev_id: str = "mic-1", **over: object) -> str:
    opts = {"source": '"sounddevice"', "fs": "48000", "distance_to_lane_m": "7.5",
            "location": "{ lat = 50.4647, lon = 30.5195, description = \"test kerb\" }",
            "timeout_s": "0.5", "retry_s": "0.2", "queue_blocks": "1000", **{k: str(v) for k, v in over.items()}}
    return f'[[device]]\nid = "{dev_id}"\nkind = "microphone"\n' + "".join(f"{k} = {v}\n" for k, v in opts.items())


def config(tmp_path: Path, url: str, *mics: str, **kw: object) -> GatewayConfig:
    return make_config(tmp_path, mqtt_url=url, extra="\n".join(mics or (mic_toml(),)), **kw)


def zone_state(version: int, status: ZoneStatus = ZoneStatus.ACTIVE, *, zone: str = ZONE,
               ts: float | None = None) -> ZoneState:
    active = status is ZoneStatus.ACTIVE
    return ZoneState(zone=zone, version=version, status=status, alert="A-1" if active else None,
                     signal=Signal.AIR_RAID if active else None, mode=Mode.ACTUAL if active else None,
                     ts=time.time() if ts is None else ts)


async def wait_until(cond: Callable[[], bool], what: str, within: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(cfg: GatewayConfig):
    """A real gateway service (devices, telemetry, supervised MQTT uplink) until the block ends."""
    gw = Gateway(cfg)
    task = asyncio.create_task(gw.run())
    try:
        await wait_until(lambda: gw.uplink is not None and gw.uplink.connected.is_set(), "gateway connected")
        yield gw
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Hub:
    """Stands in for the hub on the real broker: reads everything the gateway publishes, publishes
    zone states and commands the way the hub does."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[tuple[str, bytes, float]] = []  # topic, payload, arrival (wall clock)
        self.unseal = Unsealer()  # every gateway message is signed (contract.signed)
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task | None = None
        self.client: aiomqtt.Client | None = None

    async def __aenter__(self) -> Hub:
        self.client = await self._stack.enter_async_context(
            aiomqtt.Client("127.0.0.1", self.port, identifier="test-hub", protocol=aiomqtt.ProtocolVersion.V311))
        await self.client.subscribe(f"dozor/v1/gw/{GW}/#", qos=1)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with contextlib.suppress(aiomqtt.MqttError):
            await self._stack.aclose()

    async def _read(self) -> None:
        async for m in self.client.messages:
            self.messages.append((m.topic.value, bytes(m.payload), time.time()))

    async def publish_zone(self, payload: ZoneState | bytes, *, retain: bool = False, zone: str = ZONE) -> None:
        data = payload.to_bytes() if isinstance(payload, ZoneState) else payload
        await self.client.publish(topics.zone_state(zone), data, qos=1, retain=retain)

    async def send_command(self, token: str) -> None:
        await self.client.publish(topics.gw(GW, "cmd"), token, qos=1)

    def _of(self, channel: str) -> list[tuple[bytes, float]]:
        return [(p, t) for topic, p, t in self.messages if topic == topics.gw(GW, channel) and p]

    def births(self) -> list[GatewayState]:
        out = []
        for p, _ in self._of("state"):
            try:
                out.append(decode(GatewayState, self.unseal(p)))
            except Unverified as exc:  # a retained will of another test's gateway: not this gateway's key
                assert exc.reason == "unknown_key", exc
        return [s for s in out if s.state == "online"]

    def events(self, kind: str | None = None) -> list[Event]:
        self.births()  # learn the gateway's identity key first
        return [e for e in (decode(Event, self.unseal(p)) for p, _ in self._of("event")) if kind is None or e.kind == kind]

    def readings(self, device: str) -> list[Reading]:
        out = [r for p, _ in self._of("telemetry") for r in telemetry_wire.decode_batch(p).readings]
        return [r for r in out if r.device == device]

    def acks(self, jti: str) -> list[tuple[Ack, float]]:
        self.births()
        return [(a, t) for a, t in ((decode(Ack, self.unseal(p)), t) for p, t in self._of("ack")) if a.cmd == jti]
