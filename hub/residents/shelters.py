"""Shelters from a GeoJSON FeatureCollection of Points, per zone, nearest first when a location is known.

Feature properties: ``id`` (optional), ``name`` (string or {uk, en}), ``address`` (optional, string or
{uk, en}), ``capacity`` (optional int), ``zone`` (optional; else taken from the zone polygons),
``accessible`` (optional bool), ``type`` (optional: bomb_shelter, metro, basement, parking, building) and
``suitable`` (optional list of signals it is fit for, overriding what its type implies). Which shelters a
threat allows is guidance (``hub.residents.guidance``): a chemical hazard lists no underground shelter, and
a shelter of unknown type counts as underground. Errors name the feature and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.residents.errors import ConfigError
from hub.residents.geo import ZoneInfo, distance_m, zone_at
from hub.residents.guidance import SHELTER_TYPES, UNDERGROUND, Guidance

SIGNALS = ("air-raid", "chemical", "radiation")


@dataclass(frozen=True)
class Shelter:
    id: str
    name: Mapping[str, str]
    lat: float
    lon: float
    zone: str | None
    address: Mapping[str, str]
    capacity: int | None = None
    accessible: bool | None = None
    type: str | None = None
    suitable: frozenset[str] | None = None

    @property
    def underground(self) -> bool:
        return self.type is None or self.type in UNDERGROUND

    def fits(self, signal: str | None, guidance: Guidance | None) -> bool:
        """Whether this shelter applies to the threat: its explicit ``suitable`` list, else its type."""
        if guidance is None or not guidance.shelter_types:
            return False
        if self.suitable is not None and signal in SIGNALS:
            return signal in self.suitable
        if self.type is None:  # unknown: maybe underground, so only where underground shelters apply
            return bool(guidance.shelter_types & UNDERGROUND)
        return self.type in guidance.shelter_types

    def public(self, distance: float | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": dict(self.name), "address": dict(self.address),
                               "lat": self.lat, "lon": self.lon, "zone": self.zone,
                               "capacity": self.capacity, "accessible": self.accessible, "type": self.type}
        if distance is not None:
            out["distance_m"] = round(distance)
        return out


def _text(value: Any, where: str, *, required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if isinstance(value, str) and value.strip():
        return {"uk": value, "en": value}
    if isinstance(value, Mapping) and value and all(isinstance(v, str) for v in value.values()):
        uk = value.get("uk") or value.get("en")
        en = value.get("en") or value.get("uk")
        if uk and en:
            return {"uk": uk, "en": en}
    raise ConfigError(f"{where}: must be a non-empty string or {{uk, en}}")


def parse_shelters(doc: Any, zones: Sequence[ZoneInfo] = (), *, source: str = "shelters") -> list[Shelter]:
    if not isinstance(doc, Mapping) or doc.get("type") != "FeatureCollection":
        raise ConfigError(f"{source}: must be a GeoJSON FeatureCollection")
    feats = doc.get("features")
    if not isinstance(feats, list):
        raise ConfigError(f"{source}: 'features' must be a list")
    known = {z.id for z in zones}
    out: list[Shelter] = []
    for n, f in enumerate(feats):
        where = f"{source}: features[{n}]"
        if not isinstance(f, Mapping) or f.get("type") != "Feature":
            raise ConfigError(f"{where}: must be a GeoJSON Feature")
        geom = f.get("geometry")
        if not isinstance(geom, Mapping) or geom.get("type") != "Point":
            raise ConfigError(f"{where}: geometry must be a Point")
        c = geom.get("coordinates")
        if (not isinstance(c, list) or len(c) < 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in c[:2])):
            raise ConfigError(f"{where}: Point coordinates must be [lon, lat]")
        lon, lat = float(c[0]), float(c[1])
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ConfigError(f"{where}: [{lon}, {lat}] out of range (GeoJSON is [lon, lat])")
        props = f.get("properties") or {}
        if not isinstance(props, Mapping):
            raise ConfigError(f"{where}: properties must be an object")
        zone = props.get("zone")
        if zone is not None and (not isinstance(zone, str) or (known and zone not in known)):
            raise ConfigError(f"{where}: zone {zone!r} is not a known zone")
        if zone is None and zones:
            hit = zone_at(zones, lat, lon)
            zone = hit.id if hit else None
        cap = props.get("capacity")
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 0):
            raise ConfigError(f"{where}: capacity must be a non-negative integer")
        acc = props.get("accessible")
        if acc is not None and not isinstance(acc, bool):
            raise ConfigError(f"{where}: accessible must be true or false")
        stype = props.get("type")
        if stype is not None and stype not in SHELTER_TYPES:
            raise ConfigError(f"{where}: type must be one of {', '.join(SHELTER_TYPES)}")
        fit = props.get("suitable")
        if fit is not None and (not isinstance(fit, list) or not all(x in SIGNALS for x in fit)):
            raise ConfigError(f"{where}: suitable must be a list of {', '.join(SIGNALS)}")
        sid = props.get("id", f.get("id", f"shelter-{n}"))
        out.append(Shelter(id=str(sid), name=_text(props.get("name"), f"{where}.name", required=True),
                           lat=lat, lon=lon, zone=zone,
                           address=_text(props.get("address"), f"{where}.address", required=False),
                           capacity=cap, accessible=acc, type=stype,
                           suitable=frozenset(fit) if fit is not None else None))
    return out


def load_shelters(path: str | Path, zones: Sequence[ZoneInfo] = ()) -> list[Shelter]:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{p}: not valid JSON: {exc}") from None
    return parse_shelters(doc, zones, source=str(p))


def shelters_for(shelters: Sequence[Shelter], zone: str, lat: float | None = None,
                 lon: float | None = None, limit: int = 20, *, signal: str | None = None,
                 guidance: Guidance | None = None, filtered: bool = False) -> list[dict[str, Any]]:
    """The zone's shelters (nearest first when located); ``filtered``: only those that fit the threat."""
    mine = [s for s in shelters if s.zone == zone and (not filtered or s.fits(signal, guidance))]
    if lat is None or lon is None:
        return [s.public() for s in mine[:limit]]
    ranked = sorted(((distance_m(lat, lon, s.lat, s.lon), s) for s in mine), key=lambda t: t[0])
    return [s.public(d) for d, s in ranked[:limit]]
