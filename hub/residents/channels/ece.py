"""RFC 8291 Web Push message encryption (aes128gcm, RFC 8188), one record, with ``cryptography``.

Same result as pywebpush/http_ece (tests decrypt it with http_ece), at about a quarter of the CPU: the
fan-out budget is dominated by this function. A fresh ephemeral ECDH key and salt for every message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from collections.abc import Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

RECORD_SIZE = 4096
MAX_PLAINTEXT = 3993  # 4096 - 86 (header) - 16 (tag) - 1 (delimiter)
_X962 = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """The aes128gcm body for one subscription. ValueError when the keys or the size are invalid."""
    if len(payload) > MAX_PLAINTEXT:
        raise ValueError(f"payload {len(payload)} bytes > {MAX_PLAINTEXT}")
    ua_raw, secret = _b64d(p256dh), _b64d(auth)
    if len(secret) != 16:
        raise ValueError("auth secret must be 16 bytes")
    ua_pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_raw)
    eph = ec.generate_private_key(ec.SECP256R1())
    as_raw = eph.public_key().public_bytes(*_X962)
    ikm = _hkdf(secret, eph.exchange(ec.ECDH(), ua_pub), b"WebPush: info\x00" + ua_raw + as_raw, 32)
    salt = os.urandom(16)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    return salt + struct.pack("!IB", RECORD_SIZE, len(as_raw)) + as_raw + AESGCM(cek).encrypt(
        nonce, payload + b"\x02", None)


def encrypt_batch(payload: bytes, keys: Sequence[tuple[str, str]]) -> list[bytes | None]:
    """Encrypt for many subscriptions (runs in worker processes); None marks a broken key."""
    out: list[bytes | None] = []
    for p256dh, auth in keys:
        try:
            out.append(encrypt(payload, p256dh, auth))
        except (ValueError, TypeError):
            out.append(None)
    return out
