"""Evidence records for the violations tests: built directly from contract.evidence, signed with test keys,
and wrapped as the gateway publishes them (Event kind "noise.passby"), sealed with the gateway's identity key
(tests.gwident) because the hub acts only on messages from enrolled gateways."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract import topics
from contract.command import b64url, public_raw
from contract.evidence import (
    EVENT_KIND,
    ClockSync,
    Levels,
    Location,
    NoiseEvidence,
    PassBy,
    Sensor,
    Spectrum,
    Trace,
    sign,
)
from contract.models import Event
from tests.gwident import Sealer, enroll

SEALERS: dict[str, Sealer] = {}  # one per gateway: its per-session counter keeps rising across messages


def sealed(gateway: str, msg) -> bytes:
    """``msg`` sealed the way gateway ``gateway`` seals what leaves its outbox (session and a fresh counter)."""
    return SEALERS.setdefault(gateway, Sealer(gateway))(msg, session=True)


def enroll_gateways(state_dir, *gateways: str) -> None:
    """Enroll the test identity keys of ``gateways`` with the hub whose state dir this is."""
    for gw in gateways:
        enroll(gw, [state_dir])

NOV = datetime(2026, 11, 20, 10, 0, tzinfo=UTC).timestamp()  # all but one event start in November 2026
OCT = datetime(2026, 10, 31, 23, 59, 50, tzinfo=UTC).timestamp()


def pub_b64(key: Ed25519PrivateKey) -> str:
    return b64url(public_raw(key.public_key()))


def record(gateway: str, start: float, lafmax_75: float, *, sensor: str = "mic-1", klass: str = "exhaust",
           suppression: tuple[str, ...] = (), flags: tuple[str, ...] = (), enforcement: bool | None = None,
           lat: float | None = 50.45, lon: float | None = 30.52, key: Ed25519PrivateKey | None = None,
           pass_by: tuple[float, float] | None = None) -> NoiseEvidence:
    """A record as gateway/noise builds it: ``enforcement`` defaults to the gateway's rule; ``pass_by``: the
    measured part (start, end) of a record that absorbed its approach or departure."""
    if enforcement is None:
        enforcement = klass == "exhaust" and not suppression and not flags and lafmax_75 - 2.0 >= 95.0
    rec = NoiseEvidence(
        id=f"{gateway}.{sensor}.{round(start * 1000)}", gateway=gateway,
        sensor=Sensor(id=sensor, kind="usb_mic", full_scale_db=120.0, calibration_offset_db=0.0, fs=48_000),
        location=Location(lat=lat, lon=lon, distance_to_lane_m=7.5), clock=ClockSync(synced=True, source="ntp"),
        start=start, end=round(start + 2.5, 3), peak=round(start + 1.2, 3), duration_s=2.5,
        levels=Levels(lafmax=lafmax_75, lafmax_7p5=lafmax_75, laeq=round(lafmax_75 - 4, 2),
                      sel=round(lafmax_75 - 1, 2), lcpeak=round(lafmax_75 + 8, 2), clipped_samples=0),
        klass=klass, scores={"exhaust": 0.9 if klass == "exhaust" else 0.05, "siren": 0.9 if klass == "siren" else 0.02,
                             "horn": 0.03, "other": 0.02},
        features={"tonal": 0.1}, suppressed=bool(suppression), suppression=suppression,
        candidate=lafmax_75 >= 85.0, enforcement=enforcement, flags=flags,
        thresholds={"candidate_db": 85.0, "enforcement_db": 95.0, "uncertainty_db": 2.0, "reference_m": 7.5},
        trace=Trace(t0=round(start - 5, 3), laf=(70.0, lafmax_75, 71.0)),
        spectrum=Spectrum(t_center=round(start + 1.2, 3), bands_hz=(100.0, 125.0), levels_db=(80.0, 82.5)),
        pass_by=PassBy(start=pass_by[0], end=pass_by[1], absorbed=1) if pass_by else None)
    return sign(rec, key) if key is not None else rec


def event_msg(rec: NoiseEvidence | dict, *, gateway: str | None = None, event_id: str | None = None) -> tuple[str, bytes]:
    data = rec.to_data() if isinstance(rec, NoiseEvidence) else rec
    gw = gateway or str(data["gateway"])
    ev = Event(gateway=gw, id=event_id or str(data["id"]), device=str(data["sensor"]["id"]), kind=EVENT_KIND,
               ts=float(data.get("end", NOV)), data=data)
    return topics.gw(gw, "event"), sealed(gw, ev)
