"""Zones: a JSON list of {id, name, gateways, devices, polygon?}.

A zone listing a gateway means all of that gateway's alerting devices (sirens and speakers) as the
registry knows them; ``devices`` lists single devices as "gateway/device". ``polygon`` is an optional
GeoJSON Polygon ([lon, lat] rings, the first is the outer ring, the rest are holes). ``names`` is an
optional {uk, en} map of localised names for the resident page (``name`` stays the operators' label).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from contract.models import ALERTING_KINDS, DeviceKind, Id
from contract.topics import check_id
from hub.errors import ConfigError, UnknownZone

Position = Annotated[tuple[float, ...], Field(min_length=2, max_length=3)]


class Polygon(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    type: Literal["Polygon"]
    coordinates: tuple[tuple[Position, ...], ...] = Field(min_length=1)

    @field_validator("coordinates")
    @classmethod
    def _rings(cls, rings: tuple[tuple[Position, ...], ...]) -> tuple[tuple[Position, ...], ...]:
        for ring in rings:
            if len(ring) < 4 or ring[0] != ring[-1]:
                raise ValueError("each ring needs at least 4 positions and must be closed (first == last)")
            for pos in ring:
                if not (-180 <= pos[0] <= 180 and -90 <= pos[1] <= 90):
                    raise ValueError(f"position {list(pos)} is not [longitude, latitude]")
        return rings

    def contains(self, lon: float, lat: float) -> bool:
        outer, *holes = self.coordinates
        return _in_ring(outer, lon, lat) and not any(_in_ring(h, lon, lat) for h in holes)


def _in_ring(ring: tuple[Position, ...], x: float, y: float) -> bool:
    inside = False
    for (x1, y1, *_), (x2, y2, *_) in zip(ring, ring[1:], strict=False):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


class Zone(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Id
    name: str = Field(default="", max_length=200)
    names: dict[Literal["uk", "en"], Annotated[str, Field(min_length=1, max_length=200)]] = {}
    gateways: tuple[Id, ...] = ()
    devices: tuple[str, ...] = ()
    polygon: Polygon | None = None

    @field_validator("devices")
    @classmethod
    def _devices(cls, devices: tuple[str, ...]) -> tuple[str, ...]:
        for ref in devices:
            parts = ref.split("/")
            if len(parts) != 2:
                raise ValueError(f"device {ref!r}: write it as 'gateway/device'")
            check_id(parts[0], "gateway id")
            check_id(parts[1], "device id")
        return devices

    @model_validator(mode="after")
    def _targets(self) -> Zone:
        if not self.gateways and not self.devices:
            raise ValueError("a zone needs 'gateways' and/or 'devices'")
        return self


_ZONES = TypeAdapter(list[Zone])
DeviceLookup = Callable[[str], Mapping[str, DeviceKind | None]]  # gateway -> {device: kind}


class Zones:
    def __init__(self, zones: Iterable[Zone]) -> None:
        self.by_id: dict[str, Zone] = {}
        for zone in zones:
            if zone.id in self.by_id:
                raise ConfigError(f"zone {zone.id!r} is defined twice")
            self.by_id[zone.id] = zone

    @classmethod
    def from_list(cls, data: object, source: str = "zones") -> Zones:
        try:
            return cls(_ZONES.validate_python(data))
        except ValidationError as exc:
            lines = [f"  zone #{err['loc'][0]} {'.'.join(map(str, err['loc'][1:]))}: {err['msg']}"
                     if err["loc"] else f"  {err['msg']}" for err in exc.errors()]
            raise ConfigError(f"{source}: invalid zones:\n" + "\n".join(lines)) from None

    @classmethod
    def load(cls, path: Path) -> Zones:
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read zones file {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
        return cls.from_list(data, str(path))

    def __iter__(self):
        return iter(self.by_id.values())

    def __len__(self) -> int:
        return len(self.by_id)

    def get(self, zone_id: str) -> Zone:
        try:
            return self.by_id[zone_id]
        except KeyError:
            known = ", ".join(sorted(self.by_id)) or "none configured"
            raise UnknownZone(f"unknown zone {zone_id!r} (known: {known})") from None

    def resolve(self, zone_ids: Iterable[str], devices_of: DeviceLookup) -> dict[str, dict[str, DeviceKind | None]]:
        """Zones -> {gateway: {device: kind}} of alerting devices. Unknown kinds (device named in a zone but
        not yet announced by its gateway) are kept: the gateway is the authority and will reject them."""
        out: dict[str, dict[str, DeviceKind | None]] = {}
        for zone_id in zone_ids:
            zone = self.get(zone_id)
            for gw in zone.gateways:
                for dev, kind in devices_of(gw).items():
                    if kind in ALERTING_KINDS:
                        out.setdefault(gw, {})[dev] = kind
            for ref in zone.devices:
                gw, dev = ref.split("/")
                kind = devices_of(gw).get(dev)
                if kind is None or kind in ALERTING_KINDS:
                    out.setdefault(gw, {})[dev] = kind
        return {gw: devs for gw, devs in out.items() if devs}

    def zones_of_device(self, gateway: str, device: str) -> list[str]:
        ref = f"{gateway}/{device}"
        return [z.id for z in self if gateway in z.gateways or ref in z.devices]

    def at(self, lon: float, lat: float) -> list[str]:
        """Ids of the zones whose polygon contains the point (for the residents page)."""
        return [z.id for z in self if z.polygon is not None and z.polygon.contains(lon, lat)]
