"""Gateway seals verified with libsodium (PyNaCl) instead of cryptography's OpenSSL: the same Ed25519, about half
the CPU (measured with ``time.process_time`` over 3,000 verifications of a 200-byte message on this machine:
55-65 µs against 110 µs). In a city the hub verifies every gateway's births, heartbeats and acks, ~9,000 seals
per 2,000-gateway alert, and that was the largest single cost of its event loop in ``bench.city``
(docs/benchmarks.md). libsodium is at least as strict: it also refuses small-order public keys and
non-canonical encodings, which no honest gateway produces (``tests/hub/test_sodium.py`` checks agreement with
cryptography on honest and tampered seals)."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError


class SodiumKey:
    """An Ed25519 public key with cryptography's ``verify(signature, data)`` contract (raises InvalidSignature),
    so ``contract.signed.open_sealed`` takes it as it takes an ``Ed25519PublicKey``."""

    __slots__ = ("raw",)

    def __init__(self, key: Ed25519PublicKey) -> None:
        self.raw = key.public_bytes_raw()

    def verify(self, signature: bytes, data: bytes) -> None:
        if len(signature) != 64:
            raise InvalidSignature
        try:
            crypto_sign_open(signature + data, self.raw)
        except CryptoError:  # BadSignatureError and libsodium's other refusals
            raise InvalidSignature from None
