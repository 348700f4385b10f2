"""A whole simulated city: N gateways, each with its own MQTT connection and its own devices on ptys.

The city builds the devices (siren controllers on a virtual RS-485 bus per gateway, optional recording
loudspeakers), the virtual serial cables and each gateway's configuration. It runs *real* gateway instances,
but it does not import the gateway (peers never import each other): the layer above passes a
``gateway_factory`` that turns a configuration dict (the TOML shape of gateway.toml) into an object with an
``async run()`` — in practice ``gateway.app.Gateway``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import shutil
import struct
import sys
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from simulators.pty_link import PtyLink
from simulators.siren import SimSiren, SirenBus

log = logging.getLogger("dozor.sim.city")

DISTRICTS = ["podil", "obolon", "pechersk", "darnytsia", "sviatoshyn", "holosiiv", "solomianka",
             "shevchenko", "dnipro", "desna"]
KYIV = (50.45, 30.52)


class Runnable(Protocol):
    async def run(self) -> None: ...


GatewayFactory = Callable[[dict[str, Any]], Runnable]


@dataclass(frozen=True)
class CityPlan:
    """Pure layout: which gateways, devices and zones exist. Deterministic for a given size."""

    gateways: int
    sirens_per_gateway: int
    speakers_per_gateway: int = 0
    zones: int | None = None  # default: one zone per 5 gateways (at least 1)
    first: int = 1  # first gateway number (for splitting one city over several processes)

    @property
    def zone_count(self) -> int:
        return self.zones or max(1, math.ceil(self.gateways / 5))

    def gateway_id(self, i: int) -> str:
        return f"gw-{self.first + i:04d}"

    def zone_id(self, z: int) -> str:
        name = DISTRICTS[z % len(DISTRICTS)]
        return name if z < len(DISTRICTS) else f"{name}-{z // len(DISTRICTS) + 1}"

    def zone_of(self, i: int) -> str:
        return self.zone_id(i % self.zone_count)

    def gateway_ids(self) -> list[str]:
        return [self.gateway_id(i) for i in range(self.gateways)]

    def zones_config(self) -> list[dict[str, Any]]:
        """The hub's zones file for this city: each zone lists its gateways and a small square polygon."""
        zones: list[dict[str, Any]] = []
        per_row = max(1, math.ceil(math.sqrt(self.zone_count)))
        for z in range(self.zone_count):
            lat0 = KYIV[0] - 0.05 + (z // per_row) * 0.04
            lon0 = KYIV[1] - 0.08 + (z % per_row) * 0.06
            ring = [[lon0, lat0], [lon0 + 0.06, lat0], [lon0 + 0.06, lat0 + 0.04], [lon0, lat0 + 0.04], [lon0, lat0]]
            zones.append({
                "id": self.zone_id(z),
                "name": self.zone_id(z).replace("-", " ").title(),
                "gateways": [self.gateway_id(i) for i in range(self.gateways) if i % self.zone_count == z],
                "polygon": {"type": "Polygon", "coordinates": [ring]},
            })
        return zones

    @property
    def sirens_total(self) -> int:
        return self.gateways * self.sirens_per_gateway


def write_chime(path: Path, seconds: float = 1.0, rate: int = 16000) -> str:
    """A short two-tone chime WAV (the demo's loudspeaker message); returns its sha256."""
    n = int(seconds * rate)
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * (660 if i < n // 2 else 880) * i / rate)))
        for i in range(n)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def broker_keys(brokers: str) -> dict[str, Any]:
    """``url`` for one broker, ``urls`` for a comma-separated list of a clustered broker's nodes."""
    urls = [u.strip() for u in brokers.split(",") if u.strip()]
    return {"url": urls[0]} if len(urls) == 1 else {"urls": urls}


@dataclass
class SimGateway:
    id: str
    zone: str
    link: PtyLink
    bus: SirenBus
    sirens: list[SimSiren]
    config: dict[str, Any]
    task: asyncio.Task | None = None


@dataclass
class City:
    plan: CityPlan
    broker_url: str  # one broker, or the nodes of a clustered one joined by commas (mqtt://a:1883,mqtt://b:1883)
    hub_keys: dict[str, str]
    state_dir: Path
    gateway_factory: GatewayFactory
    spinup_s: float = 1.5
    heartbeat_s: float = 5.0
    max_activation_s: int = 900
    mqtt_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"ca_file": ...} for an mqtts:// broker
    # Per-gateway files in a provisioned city (`dozor provision gateway`): bundles/<gateway id>/ holds its
    # ca.crt, client.crt and client.key; the broker binds the client id to the certificate's name.
    bundles: Path | None = None
    gateways: list[SimGateway] = field(default_factory=list)

    def _config(self, i: int, port: str, asset: tuple[Path, str] | None) -> dict[str, Any]:
        gid = self.plan.gateway_id(i)
        devices: list[dict[str, Any]] = [
            {"id": f"siren-{k + 1}", "kind": "siren", "bus": "rs485-1", "address": k + 1}
            for k in range(self.plan.sirens_per_gateway)
        ]
        if asset is not None:
            file, sha = asset
            record = self.state_dir / gid / "speaker"
            record.mkdir(parents=True, exist_ok=True)
            player = [sys.executable, "-m", "simulators.speaker", "--record", str(record), "{file}"]
            assets = {sig: {"file": str(file), "sha256": sha}
                      for sig in ("air-raid", "all-clear", "chemical", "radiation", "test")}
            devices += [{"id": f"speaker-{k + 1}", "kind": "speaker", "player": player, "assets": assets}
                        for k in range(self.plan.speakers_per_gateway)]
        return {
            "gateway": {"id": gid, "zone": self.plan.zone_of(i), "state_dir": str(self.state_dir / gid),
                        "heartbeat_s": self.heartbeat_s},
            "mqtt": {**broker_keys(self.broker_url), "reconnect_min_s": 0.2, "reconnect_max_s": 5.0, **self.mqtt_options,
                     **self._bundle(gid)},
            "trust": {"hub_keys": dict(self.hub_keys), "max_activation_s": self.max_activation_s},
            "bus": [{"name": "rs485-1", "port": port, "baudrate": 19200, "kind": "modbus"}],
            "device": devices,
        }

    def _bundle(self, gid: str) -> dict[str, str]:
        if self.bundles is None:
            return {}
        b = self.bundles / gid
        ident, state = b / "identity-key", self.state_dir / gid
        installed = state / "identity-key"
        if ident.exists() and (not installed.exists() or installed.read_bytes() != ident.read_bytes()):
            state.mkdir(parents=True, exist_ok=True, mode=0o700)  # the enrolled identity, as installed
            shutil.copy2(ident, installed)
        return {"ca_file": str(b / "ca.crt"), "cert_file": str(b / "client.crt"), "key_file": str(b / "client.key")}

    async def start(self) -> City:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        asset = None
        if self.plan.speakers_per_gateway:
            file = self.state_dir / "chime.wav"
            asset = (file, write_chime(file))
        for i in range(self.plan.gateways):
            link = await PtyLink().start()
            sirens = [SimSiren(address=k + 1, spinup_s=self.spinup_s) for k in range(self.plan.sirens_per_gateway)]
            bus = await SirenBus(link.a, sirens).start()
            config = self._config(i, link.b, asset)
            sg = SimGateway(self.plan.gateway_id(i), self.plan.zone_of(i), link, bus, sirens, config)
            gw = self.gateway_factory(config)
            sg.task = asyncio.create_task(gw.run(), name=f"gateway {sg.id}")
            self.gateways.append(sg)
        log.info("city up: %d gateways, %d sirens", len(self.gateways), self.plan.sirens_total)
        return self

    async def stop(self) -> None:
        for g in self.gateways:
            if g.task is not None:
                g.task.cancel()
        for g in self.gateways:
            if g.task is not None:
                try:
                    with contextlib.suppress(asyncio.CancelledError):
                        await g.task
                except Exception:  # a crashed gateway is reported, not hidden
                    log.exception("gateway %s had crashed", g.id)
            await g.bus.close()
            await g.link.close()
        self.gateways.clear()

    async def __aenter__(self) -> City:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def sirens(self) -> list[SimSiren]:
        return [s for g in self.gateways for s in g.sirens]

    def sounding(self) -> int:
        return sum(1 for s in self.sirens() if s.sounding)

    def crashed(self) -> list[str]:
        """Gateways whose run() ended on its own (it must run until cancelled)."""
        return [g.id for g in self.gateways if g.task is not None and g.task.done() and not g.task.cancelled()]
