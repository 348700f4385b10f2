"""A real AlertEngine (real SQLite store, real signing keys, real registry) without a broker: commands are
captured where the MQTT client would write them, verified with the hub's keys, and the clock is a variable.
Used by the lifecycle, overlap and property tests, which need hundreds of fresh engines."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from contract.command import CommandClaims, verify_command
from contract.models import DeviceInfo, DeviceKind, GatewayState, ZoneState
from hub.alerts import AlertEngine
from hub.config import HubSettings, TwoPersonSettings
from hub.keys import HubKeys, load_or_create
from hub.metrics import HubMetrics
from hub.registry import Registry
from hub.store import Store
from hub.zones import Zones

ZONES = [{"id": "north", "gateways": ["gw-a", "gw-b"]}, {"id": "south", "gateways": ["gw-c"]},
         {"id": "centre", "gateways": ["gw-b", "gw-c"]}]
OPERATOR = {"name": "olena", "role": "operator", "via": "token"}
OPERATOR2 = {"name": "taras", "role": "operator", "via": "token"}
SUPERVISOR = {"name": "marta", "role": "supervisor", "via": "token"}
SUPERVISOR2 = {"name": "ivan", "role": "supervisor", "via": "token"}


@dataclass
class Rig:
    engine: AlertEngine
    now: list[float]
    sent: list[tuple[float, CommandClaims]] = field(default_factory=list)  # (hub time, verified claims)
    hooks: list[tuple[str, str, list[ZoneState]]] = field(default_factory=list)  # (alert, status, zone states)

    def advance(self, seconds: float) -> None:
        self.now[0] += seconds
        self.engine.tick()

    def commands(self, alert: str | None = None) -> list[CommandClaims]:
        return [c for _, c in self.sent if alert is None or c.alert == alert]


def keys_for(tmp: Path) -> HubKeys:
    return load_or_create(tmp / "keys")


def make_rig(tmp: Path, keys: HubKeys, *, two_person: dict | None = None, db: str = "hub.sqlite",
             sirens_per_gateway: int = 2) -> Rig:
    now = [time.time()]
    metrics = HubMetrics()
    store = Store(tmp / db)
    registry = Registry(store, metrics)
    zones = Zones.from_list(ZONES)
    settings = HubSettings(state_dir=tmp, confirm_deadline_s=1.0, max_retries=1)
    engine = AlertEngine(settings, keys, zones, registry, store, _never, metrics,
                         clock=lambda: now[0], two_person=TwoPersonSettings(**(two_person or {})))
    rig = Rig(engine, now)
    vkeys = keys.verification_keys()

    def capture(topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        gw = topic.split("/")[-2]
        rig.sent.append((now[0], verify_command(payload, keys=vkeys, audience=gw, now=now[0])))
        return True

    engine.publish_nowait = capture

    async def hook(alert, states):
        rig.hooks.append((alert.id, alert.status, list(states)))

    engine.hooks.append(hook)
    for gw in ("gw-a", "gw-b", "gw-c"):
        registry.on_state(GatewayState(gateway=gw, state="online", session=1, ts=now[0], devices=tuple(
            DeviceInfo(id=f"siren-{i}", kind=DeviceKind.SIREN) for i in range(1, sirens_per_gateway + 1))))
    return rig


async def _never(topic: str, payload: bytes, qos: int, retain: bool) -> bool:
    return True  # zone states (retained) are not commands; the rig counts commands only
