"""Helpers for gateway tests: the test hub key, signing, configs, simulated siren buses and ack capture."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import command as cc
from contract.models import Ack, AckStage, Action, Mode, Signal
from gateway.config import GatewayConfig, parse_config
from simulators.pty_link import PtyLink
from simulators.siren import SimSiren, SirenBus

VECTORS = json.loads((Path(cc.__file__).parent / "vectors" / "commands.json").read_text())
HUB = cc.private_key_from_seed_b64(VECTORS["hub_seed_TEST_ONLY"])  # TEST KEY, never deploy
HUB_KID = VECTORS["hub_kid"]
HUB_PUB = VECTORS["hub_public_key"]
ATTACKER = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
GW = "gw-test"


def claims(**over) -> cc.CommandClaims:
    now = int(time.time())
    base = dict(aud=GW, jti=f"jti-{uuid.uuid4().hex}", iat=now, exp=now + 60, act=Action.ACTIVATE,
                targets=("siren-1",), params=cc.CommandParams(signal=Signal.AIR_RAID, duration_s=30),
                alert="A-1", mode=Mode.EXERCISE)
    base.update(over)
    return cc.CommandClaims.model_validate(base)


def sign(key: Ed25519PrivateKey = HUB, kid: str | None = None, **over) -> str:
    return cc.sign_command(claims(**over), key, kid=kid)


def config_text(state_dir: Path, *, mqtt_url: str = "mqtt://127.0.0.1:1", buses: dict[str, str] | None = None,
                sirens: list[tuple[str, str, int]] = (), extra: str = "", heartbeat_s: float = 5,
                max_activation_s: int = 900, extra_mqtt: str = "") -> str:
    out = [f'[gateway]\nid = "{GW}"\nzone = "zone-1"\nstate_dir = "{state_dir}"\nheartbeat_s = {heartbeat_s}\n'
           "durable_replay = false\n",
           f'[mqtt]\nurl = "{mqtt_url}"\nkeepalive_s = 10\nreconnect_min_s = 0.1\nreconnect_max_s = 0.5\n' + extra_mqtt,
           f'[trust]\nmax_activation_s = {max_activation_s}\n[trust.hub_keys]\n"{HUB_KID}" = "{HUB_PUB}"\n']
    for name, port in (buses or {}).items():
        out.append(f'[[bus]]\nname = "{name}"\nport = "{port}"\nkind = "modbus"\ntimeout_s = 0.2\nreopen_s = 0.2\n')
    for dev, bus, addr in sirens:
        out.append(f'[[device]]\nid = "{dev}"\nkind = "siren"\nbus = "{bus}"\naddress = {addr}\n'
                   "spinup_timeout_s = 3\n")
    out.append(extra)
    return "\n".join(out)


def make_config(tmp_path: Path, **kw) -> GatewayConfig:
    return parse_config(config_text(tmp_path / "state", **kw), file="test.toml", base=tmp_path)


@dataclass
class AckLog:
    acks: list[Ack] = field(default_factory=list)
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, ack: Ack) -> None:
        self.acks.append(ack)
        self.event.set()

    def for_cmd(self, jti: str) -> list[Ack]:
        return [a for a in self.acks if a.cmd == jti]

    def stages(self, jti: str) -> list[tuple[str, tuple[str, ...]]]:
        return [(a.stage.value, a.devices) for a in self.for_cmd(jti)]

    def devices_at(self, jti: str, stage: AckStage) -> set[str]:
        return {d for a in self.for_cmd(jti) if a.stage is stage for d in a.devices}

    async def wait(self, pred, within: float = 10.0) -> None:
        """Wait until ``pred(self)`` holds (a protocol-level deadline, not a speed assertion)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not pred(self):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"condition not met; acks so far: {[a.model_dump() for a in self.acks]}")
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass


class SirenRig:
    """One pty link with a bus of simulated sirens behind it."""

    def __init__(self, tmp_path: Path, n: int = 2, *, spinup_s: float = 0.0, name: str = "rs485-1") -> None:
        self.name = name
        self.port = tmp_path / f"tty-{name}"
        self.link = PtyLink(a_link=self.port, b_link=tmp_path / f"sim-{name}")
        self.sirens = [SimSiren(address=i + 1, spinup_s=spinup_s, selftest_s=0.1) for i in range(n)]
        self.bus: SirenBus | None = None

    @property
    def device_ids(self) -> list[str]:
        return [f"siren-{s.address}" for s in self.sirens]

    def devices(self) -> list[tuple[str, str, int]]:
        return [(f"siren-{s.address}", self.name, s.address) for s in self.sirens]

    async def __aenter__(self) -> SirenRig:
        await self.link.start()
        self.bus = await SirenBus(self.link.b, self.sirens).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.bus is not None:
            await self.bus.close()
        await self.link.close()

    def activations(self) -> int:
        return sum(s.activations for s in self.sirens)
