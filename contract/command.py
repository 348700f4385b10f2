"""Signed command envelope: a compact JWS (EdDSA / Ed25519) whose claims carry the whole command.

The gateway verifies the exact bytes it received, so no canonical JSON is needed. Identity and
expiry live in the signed payload, not in MQTT 5 properties, so this works on MQTT 3.1.1.

    header: {"alg": "EdDSA", "typ": "dozor-cmd+jwt", "kid": "<hub key id>"}
    claims: iss, aud (gateway id), jti, iat, exp, act, targets, params, alert, mode

Replay is the caller's job (it needs storage): after ``verify_command`` succeeds, the gateway
records ``claims.jti`` until ``claims.exp`` and rejects a second sighting with REPLAYED.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, ValidationError, model_validator

from contract.errors import CommandRejected, RejectReason
from contract.models import Action, Id, Mode, Model, Sha256Hex, Signal
from contract.topics import ID_RE

TYP = "dozor-cmd+jwt"
ALG = "EdDSA"
MAX_LIFETIME_S = 900  # a command older than this is never valid: bounds the replay store
DEFAULT_LEEWAY_S = 5.0  # tolerated clock skew for iat in the future
MAX_DURATION_S = 3600
MAX_TOKEN_BYTES = 16 * 1024
MAX_TARGETS = 256  # devices per command
JTI_PATTERN = r"^[A-Za-z0-9_.:-]+$"
_JTI_RE = re.compile(r"[A-Za-z0-9_.:-]{8,128}")  # CommandClaims.jti, for fullmatch
_ID = ID_RE.pattern.removeprefix("^").removesuffix("$")  # the id grammar (contract.topics), for fullmatch
_ID_RE = re.compile(_ID)
_TARGETS_RE = re.compile(f'{_ID}(?:","{_ID})*')  # ids joined by '","' ('"' and ',' are never in an id)


class AssetRef(Model):
    name: str = Field(min_length=1, max_length=128)
    sha256: Sha256Hex


class CommandParams(Model):
    signal: Signal | None = None
    duration_s: int | None = Field(default=None, ge=1, le=MAX_DURATION_S)
    asset: AssetRef | None = None  # loudspeaker message, pinned by hash


class CommandClaims(Model):
    iss: str = Field(default="dozor-hub", max_length=64)
    aud: Id
    jti: str = Field(min_length=8, max_length=128, pattern=JTI_PATTERN)
    iat: int
    exp: int
    act: Action
    targets: Annotated[tuple[Id, ...], Field(min_length=1, max_length=MAX_TARGETS)]
    params: CommandParams = CommandParams()
    alert: str | None = Field(default=None, max_length=128)
    mode: Mode
    by: str | None = Field(default=None, max_length=160)  # who ordered it: "alice (operator)"; the gateway logs it

    @model_validator(mode="after")
    def _check(self) -> CommandClaims:
        if self.exp <= self.iat:
            raise ValueError("exp must be after iat")
        if self.act is Action.ACTIVATE and (self.params.signal is None or self.params.duration_s is None):
            raise ValueError("activate needs params.signal and params.duration_s")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("duplicate targets")
        return self


# Key ids whose PRIVATE seed is published in this repository (contract/vectors, for golden tests). A gateway
# that pins one trusts anybody: `dozor gateway check-config` warns loudly and the gateway logs an error.
PUBLISHED_TEST_KIDS = frozenset({"Vkdap1RjR0wChd9d"})

# ---------------------------------------------------------------- keys

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A stable key id: the first 16 characters of the base64url SHA-256 of the raw public key."""
    return b64url(hashlib.sha256(public_raw(key)).digest())[:16]


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    raw = b64url_decode(text.strip())
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes (43 base64url characters)")
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_from_seed_b64(text: str) -> Ed25519PrivateKey:
    raw = b64url_decode(text.strip())
    if len(raw) != 32:
        raise ValueError("an Ed25519 private seed is 32 bytes (43 base64url characters)")
    return Ed25519PrivateKey.from_private_bytes(raw)


def private_seed_b64(key: Ed25519PrivateKey) -> str:
    return b64url(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption()))


# ---------------------------------------------------------------- sign / verify

@lru_cache(maxsize=64)
def _header_segment(kid: str) -> bytes:
    header = {"alg": ALG, "kid": kid, "typ": TYP}
    return base64.urlsafe_b64encode(json.dumps(header, separators=(",", ":"), sort_keys=True).encode()).rstrip(b"=")


def sign_command(claims: CommandClaims, key: Ed25519PrivateKey, kid: str | None = None) -> str:
    """A compact JWS (EdDSA), byte for byte what ``jwt.encode(payload, key, algorithm=ALG, headers={"kid": kid,
    "typ": TYP})`` makes (tests/contract checks it against PyJWT), without PyJWT's per-call key preparation and
    header validation: the hub signs one command per gateway per phase, so this is its hottest path."""
    return seal(signing_input(claims, kid or key_id(key.public_key())), key).decode()


def signing_input(claims: CommandClaims, kid: str) -> bytes:
    """The JWS signing input (header.payload, base64url) of one command's claims."""
    payload = json.dumps(claims.model_dump(mode="json", exclude_none=True), separators=(",", ":")).encode()
    return _header_segment(kid) + b"." + base64.urlsafe_b64encode(payload).rstrip(b"=")


class CommandTemplate:
    """The claims of many commands that differ only in ``aud``, ``jti`` and ``targets`` (one phase's commands,
    one per gateway), encoded by string concatenation instead of a model and a ``json.dumps`` each: the bytes are
    exactly ``sign_command``'s (tests/contract checks it). ``claims`` is validated once, as a whole; per command
    the varying parts are checked against the same grammar (``ID_RE`` ids, 1-256 distinct targets, a jti of
    the model's pattern) and a value outside it raises ``ValueError``. Nothing here is signed in advance: each
    command's signing input is new and ``seal`` signs it once."""

    def __init__(self, claims: CommandClaims, kid: str) -> None:
        marks = {"aud": "@@dozor-aud@@", "jti": "@@dozor-jti@@", "targets": "@@dozor-targets@@"}
        doc = claims.model_dump(mode="json", exclude_none=True)
        doc.update(marks)
        text = json.dumps(doc, separators=(",", ":"))
        parts = [text]
        for key in ("aud", "jti", "targets"):  # the model's field order: aud, jti, ..., targets
            head, sep, tail = parts[-1].partition(json.dumps(marks[key]))
            if not sep or marks[key] in head or marks[key] in tail:
                raise ValueError(f"claims text collides with the template mark for {key}")
            parts[-1:] = [head, tail]
        self._pre, self._mid1, self._mid2, self._post = parts
        self.header = _header_segment(kid)

    def claims_json(self, aud: str, jti: str, targets_json: str) -> bytes:
        return f'{self._pre}"{aud}"{self._mid1}"{jti}"{self._mid2}{targets_json}{self._post}'.encode()

    def signing_input(self, aud: str, jti: str, targets: tuple[str, ...]) -> tuple[bytes, str]:
        """(the JWS signing input of one command, its targets as JSON: what the hub stores with it)."""
        joined = '","'.join(targets)
        if not _ID_RE.fullmatch(aud) or not _JTI_RE.fullmatch(jti) or not 0 < len(targets) <= MAX_TARGETS \
                or len(set(targets)) != len(targets) or not _TARGETS_RE.fullmatch(joined):
            raise ValueError(f"command for {aud!r} outside the contract: jti {jti!r}, targets {targets!r}")
        targets_json = f'["{joined}"]'  # ids need no JSON escaping (their grammar has no quote, backslash, ...)
        payload = base64.urlsafe_b64encode(self.claims_json(aud, jti, targets_json)).rstrip(b"=")
        return self.header + b"." + payload, targets_json


def seal(signing_input: bytes, key: Ed25519PrivateKey) -> bytes:
    """The compact JWS of a signing input: one Ed25519 signature (cryptography releases the GIL meanwhile)."""
    return signing_input + b"." + base64.urlsafe_b64encode(key.sign(signing_input)).rstrip(b"=")


def token_sha256(token: str | bytes) -> str:
    return hashlib.sha256(token if isinstance(token, bytes) else token.encode()).hexdigest()


def peek(token: str | bytes) -> dict[str, object]:
    """UNVERIFIED claims, only to label a rejected ack (jti, alert). Never act on these."""
    if len(token) > MAX_TOKEN_BYTES:
        return {}
    try:
        text = token.decode() if isinstance(token, bytes) else token
        body = json.loads(b64url_decode(text.split(".")[1]))
        return body if isinstance(body, dict) else {}
    except (ValueError, IndexError, UnicodeDecodeError, RecursionError):
        return {}


def verify_command(
    token: str | bytes,
    *,
    keys: Mapping[str, Ed25519PublicKey],
    audience: str,
    now: float,
    leeway_s: float = DEFAULT_LEEWAY_S,
    max_lifetime_s: int = MAX_LIFETIME_S,
    stop_never_expires: bool = False,
) -> CommandClaims:
    """Check signature (pinned keys by kid), algorithm, type, claims shape, audience and time.

    Raises CommandRejected with a precise reason. Does not check replay (see module doc).
    ``stop_never_expires``: a stop is not refused for its age (stopping is always safe; it still needs a valid
    signature, audience and claims). Gateways pass True (invariant 10); the scope of a stop is its alert.
    """
    peeked = peek(token)
    jti = peeked.get("jti") if isinstance(peeked.get("jti"), str) else None
    alert = peeked.get("alert") if isinstance(peeked.get("alert"), str) else None

    def reject(reason: RejectReason, detail: str = "") -> CommandRejected:
        return CommandRejected(reason, detail, jti=jti, alert=alert)

    if len(token) > MAX_TOKEN_BYTES:
        raise reject(RejectReason.MALFORMED, "token too large")
    try:
        text = token.decode("ascii") if isinstance(token, bytes) else token
        header = jwt.get_unverified_header(text)
    except (jwt.InvalidTokenError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise reject(RejectReason.MALFORMED, f"not a compact JWS: {type(exc).__name__}") from None
    if header.get("alg") != ALG:
        raise reject(RejectReason.BAD_ALGORITHM, f"alg {header.get('alg')!r}")
    if header.get("typ") != TYP:
        raise reject(RejectReason.MALFORMED, f"typ {header.get('typ')!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise reject(RejectReason.UNKNOWN_KEY, f"kid {kid!r}")
    try:
        body = jwt.decode(
            text, keys[kid], algorithms=[ALG],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False,
                     "verify_iss": False, "require": []},
        )
    except jwt.InvalidSignatureError:
        raise reject(RejectReason.BAD_SIGNATURE) from None
    except (jwt.InvalidTokenError, ValueError, TypeError, RecursionError) as exc:
        raise reject(RejectReason.MALFORMED, type(exc).__name__) from None
    try:
        claims = CommandClaims.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise reject(RejectReason.MALFORMED, f"{'.'.join(map(str, err['loc']))}: {err['msg']}"[:200]) from None
    if claims.aud != audience:
        raise reject(RejectReason.WRONG_AUDIENCE, f"for {claims.aud}")
    if claims.exp - claims.iat > max_lifetime_s:
        raise reject(RejectReason.LIFETIME_TOO_LONG, f"{claims.exp - claims.iat}s > {max_lifetime_s}s")
    if claims.iat > now + leeway_s:
        raise reject(RejectReason.NOT_YET_VALID, f"iat {claims.iat - now:.0f}s ahead")
    if claims.exp <= now and not (stop_never_expires and claims.act is Action.STOP):
        raise reject(RejectReason.EXPIRED, f"{now - claims.exp:.0f}s ago")
    return claims


Verdict = Literal["ok"] | RejectReason
