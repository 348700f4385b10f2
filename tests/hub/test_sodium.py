"""hub/sodium.py verifies gateway seals with libsodium; it must agree with cryptography's Ed25519 (the gateway's
signer and the contract's reference) on honest seals and on every tampered one."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.signed import Unverified, open_sealed, seal
from hub.sodium import SodiumKey

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


def accepts(key, sig: bytes, data: bytes) -> bool:
    try:
        key.verify(sig, data)
        return True
    except InvalidSignature:
        return False


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048), flip=st.integers(min_value=-1, max_value=64 * 8 - 1),
       tamper_data=st.booleans())
def test_libsodium_and_cryptography_agree_on_honest_and_tampered_signatures(data, flip, tamper_data):
    sig = bytearray(KEY.sign(data))
    msg = bytearray(data)
    if flip >= 0:
        sig[flip // 8] ^= 1 << (flip % 8)
    if tamper_data and msg:
        msg[0] ^= 0x01
    reference = accepts(KEY.public_key(), bytes(sig), bytes(msg))
    assert accepts(SodiumKey(KEY.public_key()), bytes(sig), bytes(msg)) == reference
    assert reference == (flip < 0 and not (tamper_data and data))  # the oracle itself: only the honest one passes


@pytest.mark.parametrize("sig", [b"", b"\x00" * 63, b"\x00" * 65, b"\x00" * 64])
def test_malformed_signatures_are_refused_not_raised(sig):
    assert not accepts(SodiumKey(KEY.public_key()), sig, b"payload")


def test_a_seal_opens_with_its_own_key_only():
    wire = seal(b'{"gateway":"gw-1"}', KEY, "k1")
    assert open_sealed(wire, {"k1": SodiumKey(KEY.public_key())}) == b'{"gateway":"gw-1"}'
    with pytest.raises(Unverified) as err:
        open_sealed(wire, {"k1": SodiumKey(OTHER.public_key())})
    assert err.value.reason == "bad_signature"
