"""Signed gateway messages: a detached Ed25519 signature over the exact payload bytes (sans-IO).

Everything a gateway publishes on its control channels (births and last-wills on ``state``, ``heartbeat``,
``ack``) and its ``event`` messages is sealed::

    wire = payload + b"\\n" + b"dozor-sig1 " + kid + b" " + base64url(Ed25519(payload))

``payload`` is the JSON of the message model, exactly the bytes that were signed: compact JSON never contains
a raw newline, so the last ``\\n`` splits payload from trailer without any canonicalisation. ``kid`` is
``contract.command.key_id`` of the gateway's identity public key. Inside the payload, ``session`` and ``ctr``
order the message: ``ctr`` is a per-session monotonic counter (the birth is 1, every later message of the
session takes the next value). The last-will is signed at connect, before any other message of its session
exists, so it cannot carry a later counter: it is the one message with ``ctr = 0``, accepted at most once per
session (a session has exactly one will). See docs/protocol.md.

Receivers: ``open_sealed(wire, keys)`` -> payload bytes or :class:`Unverified` (with a bounded reason), then
decode the payload, then :class:`ReplayGuard.admit` with its ``(session, ctr)``.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contract.command import b64url, b64url_decode

MARK = b"dozor-sig1 "
MAX_SEALED_BYTES = 256 * 1024 + 200
WILL_CTR = 0
MAX_SESSION_STEP = 100_000  # a session may only move forward this much (see docs/protocol.md)
WINDOW = 4096  # counters this far below the highest seen are too old to be judged: refused
_WINDOW_MASK = (1 << WINDOW) - 1


class Unverified(Exception):  # noqa: N818 - a verdict, not a crash
    """The message is unsigned, unverifiable or replayed. ``reason`` is a bounded metric label."""

    REASONS = ("empty", "unsigned", "bad_format", "unknown_key", "not_enrolled", "bad_signature", "no_counter",
               "replayed", "stale_session", "session_jump", "wrong_gateway")

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason
        self.detail = detail


def seal(payload: bytes, key: Ed25519PrivateKey, kid: str) -> bytes:
    if b"\n" in payload:
        raise ValueError("a sealed payload must not contain a newline (compact JSON never does)")
    return payload + b"\n" + MARK + kid.encode() + b" " + b64url(key.sign(payload)).encode()


def split(wire: bytes) -> tuple[bytes, str, bytes]:
    """(payload, kid, signature) without verifying; Unverified('unsigned' | 'bad_format')."""
    if len(wire) > MAX_SEALED_BYTES:
        raise Unverified("bad_format", "too large")
    if not wire:
        raise Unverified("empty")  # e.g. a retained state cleared by ``dozor gateways reset``
    payload, nl, trailer = wire.rpartition(b"\n")
    if not nl or not trailer.startswith(MARK):
        raise Unverified("unsigned")
    parts = trailer[len(MARK):].split(b" ")
    if len(parts) != 2 or not (1 <= len(parts[0]) <= 64):
        raise Unverified("bad_format", "trailer")
    try:
        kid = parts[0].decode("ascii")
        sig = b64url_decode(parts[1].decode("ascii"))
    except (UnicodeDecodeError, ValueError, binascii.Error):
        raise Unverified("bad_format", "trailer encoding") from None
    if len(sig) != 64:
        raise Unverified("bad_format", "signature length")
    return payload, kid, sig


class VerifyKey(Protocol):
    """An Ed25519 public key as cryptography's: ``verify`` raises InvalidSignature (e.g. hub/sodium.py's)."""

    def verify(self, signature: bytes, data: bytes) -> None: ...


def open_sealed(wire: bytes, keys: Mapping[str, Ed25519PublicKey | VerifyKey]) -> bytes:
    """Verify a sealed message against the sender's enrolled keys (kid -> key); return the payload bytes."""
    payload, kid, sig = split(wire)
    key = keys.get(kid)
    if key is None:
        raise Unverified("unknown_key", kid)
    try:
        key.verify(sig, payload)
    except InvalidSignature:
        raise Unverified("bad_signature", kid) from None
    return payload


@dataclass
class ReplayGuard:
    """Per-gateway anti-replay state: the current session and a sliding window of its counters.

    ``admit(session, ctr)`` raises Unverified for a replay, an older session, or an implausible session jump;
    otherwise it records the counter. Counters may arrive slightly out of order (acks, heartbeats and events
    travel on different topics and hub connections), so a window of ``WINDOW`` recent counters is kept, as in
    IPsec/DTLS anti-replay. ``session = -1`` means "no floor yet" (new enrollment, or ``dozor gateways
    reset``): the next verified message sets it.
    """

    session: int = -1
    high: int = -1
    # bit i set: counter ``high - i`` was seen (i < WINDOW). A bitmap, not a set of counters: a set grew to
    # 2 x WINDOW ints per gateway before it was trimmed (~0.5 MB each; a soak read it as a steady leak, and
    # 2,000 gateways would have held ~1 GB); the bitmap is WINDOW / 8 bytes
    window: int = 0
    will_seen: bool = False
    below: int = -1  # every counter up to this one counts as seen (restored after a hub restart)

    def check(self, session: int, ctr: int) -> None:
        """Raise Unverified if (session, ctr) would be refused; change nothing."""
        if self.session >= 0:
            if session < self.session:
                raise Unverified("stale_session", f"{session} < {self.session}")
            if session - self.session > MAX_SESSION_STEP:
                raise Unverified("session_jump", f"{self.session} -> {session}")
            if session > self.session:
                return
        elif session < 0:
            raise Unverified("stale_session")
        if session != self.session:
            return
        if ctr == WILL_CTR:
            if self.will_seen:
                raise Unverified("replayed", "second last-will of the session")
            return
        if ctr <= self.below or ctr <= self.high - WINDOW or \
                (ctr <= self.high and self.window >> (self.high - ctr) & 1):
            raise Unverified("replayed", f"ctr {ctr} (high {self.high})")

    def admit(self, session: int, ctr: int) -> None:
        self.check(session, ctr)
        if session != self.session:
            self.session, self.high, self.below, self.will_seen = session, -1, -1, False
            self.window = 0
        if ctr == WILL_CTR:
            self.will_seen = True
            return
        if ctr > self.high:
            self.window = ((self.window << (ctr - self.high)) | 1) & _WINDOW_MASK if ctr - self.high < WINDOW else 1
            self.high = ctr
        else:
            self.window |= 1 << (self.high - ctr)

    def floor(self) -> dict[str, int | bool]:
        return {"session": self.session, "high": self.high, "will_seen": self.will_seen}

    @classmethod
    def from_floor(cls, doc: Mapping[str, object]) -> ReplayGuard:
        """Restore after a hub restart: everything up to the persisted high counter counts as seen."""
        high = int(doc.get("high", -1))  # type: ignore[arg-type]
        return cls(session=int(doc.get("session", -1)), high=high, below=high,  # type: ignore[arg-type]
                   will_seen=bool(doc.get("will_seen", False)))
