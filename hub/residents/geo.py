"""Zones with GeoJSON polygons, point-in-polygon and distances. GeoJSON order is [lon, lat]."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contract.topics import ID_RE
from hub.residents.errors import ConfigError

Ring = tuple[tuple[float, float], ...]  # (lon, lat) pairs, closed


@dataclass(frozen=True)
class ZoneInfo:
    id: str
    name: Mapping[str, str]
    rings: tuple[Ring, ...] = ()  # outer ring first, then holes

    def contains(self, lat: float, lon: float) -> bool:
        if not self.rings or not _in_ring(self.rings[0], lon, lat):
            return False
        return not any(_in_ring(hole, lon, lat) for hole in self.rings[1:])

    def centroid(self) -> tuple[float, float] | None:
        """(lat, lon) mean of the outer ring's vertices: good enough for district-sized zones."""
        if not self.rings:
            return None
        pts = self.rings[0][:-1] or self.rings[0]
        return sum(p[1] for p in pts) / len(pts), sum(p[0] for p in pts) / len(pts)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": dict(self.name),
                "polygon": {"type": "Polygon", "coordinates": [[list(p) for p in r] for r in self.rings]}
                if self.rings else None}


def _in_ring(ring: Ring, x: float, y: float) -> bool:
    inside = False
    j = len(ring) - 1
    for i in range(len(ring)):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def _coord(value: Any, where: str) -> tuple[float, float]:
    if (not isinstance(value, list | tuple) or len(value) < 2
            or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in value[:2])):
        raise ConfigError(f"{where}: a position must be [lon, lat] numbers")
    lon, lat = float(value[0]), float(value[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ConfigError(f"{where}: [{lon}, {lat}] is outside [-180..180, -90..90] (GeoJSON is [lon, lat])")
    return lon, lat


def parse_polygon(geom: Any, where: str) -> tuple[Ring, ...]:
    if not isinstance(geom, Mapping) or geom.get("type") != "Polygon":
        raise ConfigError(f"{where}: polygon must be a GeoJSON Polygon")
    coords = geom.get("coordinates")
    if not isinstance(coords, list) or not coords:
        raise ConfigError(f"{where}: Polygon needs coordinates")
    rings = []
    for k, ring in enumerate(coords):
        if not isinstance(ring, list):
            raise ConfigError(f"{where}: ring {k} is not a list")
        pts = tuple(_coord(p, f"{where} ring {k}") for p in ring)
        if len(pts) < 4 or pts[0] != pts[-1]:
            raise ConfigError(f"{where}: ring {k} must be closed (first = last) with at least 4 positions")
        rings.append(pts)
    return tuple(rings)


def parse_zones(items: Iterable[Mapping[str, Any]]) -> list[ZoneInfo]:
    """Take the hub's zones config entries ({id, name, polygon, ...}); extra keys are ignored."""
    out: list[ZoneInfo] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        where = f"zones[{n}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: must be an object")
        zid = item.get("id")
        if not isinstance(zid, str) or not ID_RE.match(zid):
            raise ConfigError(f"{where}: id must be 1-64 of A-Z a-z 0-9 _ . - starting alphanumeric")
        if zid in seen:
            raise ConfigError(f"{where}: duplicate zone id {zid!r}")
        seen.add(zid)
        raw_name = item.get("name", zid)
        if isinstance(raw_name, str):
            name = {"uk": raw_name, "en": raw_name}
        elif isinstance(raw_name, Mapping) and all(isinstance(v, str) for v in raw_name.values()):
            name = {"uk": raw_name.get("uk") or raw_name.get("en") or zid,
                    "en": raw_name.get("en") or raw_name.get("uk") or zid}
        else:
            raise ConfigError(f"{where}: name must be a string or {{uk, en}}")
        poly = item.get("polygon")
        rings = parse_polygon(poly, f"{where} ({zid})") if poly is not None else ()
        out.append(ZoneInfo(zid, name, rings))
    return out


def zone_at(zones: Sequence[ZoneInfo], lat: float, lon: float) -> ZoneInfo | None:
    for z in zones:
        if z.contains(lat, lon):
            return z
    return None


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) in metres."""
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))
