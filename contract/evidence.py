"""Signed evidence record for one noise event (part of the contract: the gateway signs it, the hub verifies it).

The record is a pydantic model; ``record.model_dump(mode="json")`` is a plain JSON dict that travels as
``contract.models.Event.data`` (Event.kind = ``"noise.passby"``).

Signature (Ed25519, the gateway's key):

    canonical bytes = b"dozor-noise-evidence/v1\\n" + JSON of the record without its ``signature`` field,
                      with sorted keys, separators (",", ":"), ASCII only (\\u escapes), no NaN/Infinity

Every float in the record is rounded when the record is built (levels 0.01 dB, times 1 ms, scores 1e-4),
and JSON floats use Python's shortest round-trip repr, so a verifier that parses the JSON and dumps it
again the same way gets the same bytes. ``signature`` = {"alg": "Ed25519", "kid": key id (see
contract.command.key_id), "sig": base64url of the 64-byte signature}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.command import b64url, b64url_decode, key_id
from contract.errors import ContractError
from contract.models import Id


class EvidenceError(ContractError):
    """An evidence record is malformed or its signature does not verify."""


DOMAIN = b"dozor-noise-evidence/v1\n"
EVENT_KIND = "noise.passby"
Klass = Literal["exhaust", "siren", "horn", "other"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Location(_M):
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    distance_to_lane_m: float = Field(gt=0, le=100)
    description: str = Field(default="", max_length=200)


class ClockSync(_M):
    synced: bool = False
    source: str = Field(default="unknown", max_length=32)  # "ntp", "ptp", "gps", "file", "unknown"
    offset_ms: float | None = None
    uncertainty_ms: float | None = Field(default=None, ge=0)


class Sensor(_M):
    id: Id
    kind: str = Field(default="mic", max_length=32)  # "usb_mic", "i2s_mic", "noise_node", "wav"
    full_scale_db: float
    calibration_offset_db: float
    calibration_date: str | None = Field(default=None, max_length=32)
    fs: int = Field(gt=0)


class Levels(_M):
    lafmax: float
    lafmax_7p5: float  # normalised to the reference distance
    laeq: float
    sel: float
    lcpeak: float | None
    clipped_samples: int = Field(ge=0)


class Trace(_M):
    t0: float  # epoch seconds of the first value
    hz: float = 10.0
    laf: tuple[float, ...]  # per 100 ms: the LAF maximum within that 100 ms


class Spectrum(_M):
    kind: Literal["LZeq_1s_third_octave"] = "LZeq_1s_third_octave"
    t_center: float
    bands_hz: tuple[float, ...]
    levels_db: tuple[float, ...]


class AudioClip(_M):
    format: Literal["wav_pcm16_b64"] = "wav_pcm16_b64"
    t0: float
    data: str


class ModelInfo(_M):
    name: str = Field(max_length=64)  # "mlp" (learned) or "rules" (hand-set logits)
    version: str = Field(min_length=1, max_length=64)  # e.g. "mlp-0123456789ab": hash of the weights


class Overload(_M):
    """Clipping of the event's input samples. The clipped part is never reconstructed: ``unclipped_lafmax``
    is a lower bound of the true LAFmax from the samples before any clipping (and >= 100 ms after one), and
    ``proves_exceedance`` says whether that bound alone, minus the margin, reaches the enforcement threshold."""
    clipped_samples: int = Field(ge=0)
    clipped_frames: int = Field(ge=0)  # 100 ms frames with at least one clipped sample
    full_scale_db: float
    unclipped_lafmax: float | None  # dB at the microphone (None: nothing unclipped)
    unclipped_lafmax_7p5: float | None
    proves_exceedance: bool


class Uncertainty(_M):
    budget: str = Field(max_length=32)
    components: dict[str, float]  # standard uncertainties, dB
    u_c: float = Field(ge=0)
    k: float = Field(gt=0)
    expanded_db: float = Field(ge=0)
    margin_db: float = Field(ge=0)  # subtracted from LAFmax(7.5 m) before comparing with the threshold


class PassBy(_M):
    """The pass-by an event measured, when the event also spans its approach or departure (pieces the
    detector would have cut off at a dip or around the maximum, absorbed: one pass-by, one event). Levels,
    class, scores and flags are the pass-by's; ``start``/``end`` of the record cover the whole stretch."""
    start: float
    end: float
    absorbed: int = Field(ge=1)  # pieces absorbed


class AbsorbedCase(_M):
    """A piece of the record's chain that was an enforcement case on its own before it joined a louder case
    (``gateway.noise.chains``): a further over-limit maximum inside the record, the same vehicle's blip or a
    second violator right behind it (one microphone cannot tell which). ``peak`` in the record's clock."""
    peak: float
    lafmax_7p5: float
    enforcement_score: float | None = Field(default=None, ge=0.0, le=1.0)


# fields added after v1 records were first signed: left out of the JSON when absent, so older records
# (which do not have them) keep their canonical bytes and still verify
OPTIONAL_FIELDS = ("model", "overload", "uncertainty", "pass_by", "enforcement_score", "absorbed_cases")


class Signature(_M):
    alg: Literal["Ed25519"] = "Ed25519"
    kid: str = Field(min_length=1, max_length=64)
    sig: str = Field(min_length=1, max_length=128)


class NoiseEvidence(_M):
    v: Literal[1] = 1
    id: str = Field(min_length=1, max_length=128)
    gateway: Id
    sensor: Sensor
    location: Location
    clock: ClockSync
    start: float
    end: float
    peak: float
    duration_s: float
    levels: Levels
    klass: Klass = Field(alias="class")
    scores: dict[str, float]
    features: dict[str, float]
    suppressed: bool
    suppression: tuple[str, ...] = ()
    candidate: bool
    enforcement: bool
    flags: tuple[str, ...] = ()  # e.g. "too_long", "clipped", "cut"
    thresholds: dict[str, float]
    trace: Trace
    spectrum: Spectrum | None
    audio: AudioClip | None = None
    model: ModelInfo | None = None
    overload: Overload | None = None
    uncertainty: Uncertainty | None = None
    pass_by: PassBy | None = None
    # what the case's score gate (thresholds.min_exhaust_score) was applied to: rules.enforcement_score,
    # p(exhaust) / (1 - the siren probability the event's shape carries)
    enforcement_score: float | None = Field(default=None, ge=0.0, le=1.0)
    # pieces that were cases of their own before they joined this (louder) case: further over-limit maxima
    absorbed_cases: tuple[AbsorbedCase, ...] | None = None
    signature: Signature | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_data(self) -> dict[str, object]:
        """The dict that goes into contract.models.Event.data."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=False)
        for k in OPTIONAL_FIELDS:
            if data.get(k) is None:
                data.pop(k, None)
        return data


def canonical_bytes(record: NoiseEvidence | Mapping[str, object]) -> bytes:
    data = dict(record.to_data() if isinstance(record, NoiseEvidence) else record)
    data.pop("signature", None)
    for k in OPTIONAL_FIELDS:
        if k in data and data[k] is None:
            data.pop(k)
    try:
        body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"record cannot be canonicalised: {exc}") from None
    return DOMAIN + body.encode("ascii")


def sign(record: NoiseEvidence, key: Ed25519PrivateKey, kid: str | None = None) -> NoiseEvidence:
    sig = key.sign(canonical_bytes(record))
    signature = Signature(kid=kid or key_id(key.public_key()), sig=b64url(sig))
    return record.model_copy(update={"signature": signature})


def verify(data: NoiseEvidence | Mapping[str, object], keys: Mapping[str, Ed25519PublicKey]) -> NoiseEvidence:
    """Validate and verify a record (model or its JSON dict). Raises EvidenceError on any failure."""
    try:
        record = data if isinstance(data, NoiseEvidence) else NoiseEvidence.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise EvidenceError(f"invalid record: {'.'.join(map(str, err['loc']))}: {err['msg']}"[:200]) from None
    if record.signature is None:
        raise EvidenceError("record is not signed")
    key = keys.get(record.signature.kid)
    if key is None:
        raise EvidenceError(f"unknown key {record.signature.kid!r}")
    try:
        raw = b64url_decode(record.signature.sig)
        key.verify(raw, canonical_bytes(record))
    except (InvalidSignature, ValueError) as exc:
        raise EvidenceError(f"bad signature ({type(exc).__name__})") from None
    return record
