"""Fixtures for the resident-alert tests: zones with polygons, shelters, alerts, local receivers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.models import Mode, Signal, ZoneState, ZoneStatus
from hub.residents.geo import parse_zones
from hub.residents.models import MsgType, ResidentAlert
from hub.residents.shelters import load_shelters

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 24, 21, 0, 0, tzinfo=UTC)


def rect(lon0: float, lat0: float, lon1: float, lat1: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]]}


ZONES = [
    {"id": "kyiv-podil", "name": {"uk": "Поділ", "en": "Podil"}, "gateways": ["gw-1"], "devices": [],
     "polygon": rect(30.49, 50.455, 30.53, 50.48)},
    {"id": "kyiv-obolon", "name": {"uk": "Оболонь", "en": "Obolon"}, "gateways": ["gw-2"], "devices": [],
     "polygon": rect(30.47, 50.49, 30.53, 50.53)},
]


@pytest.fixture
def zones():
    return parse_zones(ZONES)


@pytest.fixture
def shelters(zones):
    return load_shelters(ROOT / "examples" / "shelters.geojson", zones)


def alert(version: int = 1, *, zones: tuple[str, ...] = ("kyiv-podil",), mode: Mode = Mode.ACTUAL,
          status: ZoneStatus = ZoneStatus.ACTIVE, msg_type: MsgType | None = None, aid: str = "A-1",
          signal: Signal = Signal.AIR_RAID) -> ResidentAlert:
    if msg_type is None:
        msg_type = (MsgType.ALERT if version == 1 else
                    MsgType.CANCEL if status is ZoneStatus.CANCELLED else MsgType.UPDATE)
    return ResidentAlert(id=aid, zones=zones, signal=signal, mode=mode, status=status, msg_type=msg_type,
                         sent=T0 + timedelta(minutes=version), expires=T0 + timedelta(hours=2),
                         version=version)


def states(a: ResidentAlert, zone_version: int | None = None) -> list[ZoneState]:
    return [ZoneState(zone=z, version=zone_version if zone_version is not None else a.version, status=a.status,
                      alert=a.id, signal=a.signal, mode=a.mode, ts=a.sent.timestamp(),
                      headline={"en": a.headline("en")}) for z in a.zones]
