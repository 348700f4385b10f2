"""The gateway's own Ed25519 evidence key: signs noise evidence records (``contract.evidence``).

Generated at first start into ``state_dir/evidence-key`` (``runtime.keyfiles``: base64url raw seed, mode 0600,
created with O_EXCL so two starts never overwrite each other), reused afterwards. Its public half is announced
in every birth (``GatewayState.evidence_key``); the hub pins it and verifies evidence with it. The key never
leaves the gateway; losing the file means a new key and a new kid (old records still verify with the old key).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.command import b64url, key_id, public_raw
from gateway.errors import ConfigError
from runtime import keyfiles

KEY_FILE = "evidence-key"


@dataclass(frozen=True)
class EvidenceKey:
    private: Ed25519PrivateKey
    kid: str
    public_b64: str  # base64url raw public key, as announced in the birth


def load_or_create(state_dir: Path) -> EvidenceKey:
    path = state_dir / KEY_FILE
    try:
        key, _ = keyfiles.load_or_create(path, what="evidence key", strict=False)
    except keyfiles.KeyFileError as exc:
        hint = " (move it away to make a new one; the hub must then pin the new key)" if "damaged" in str(exc) else ""
        raise ConfigError(str(path), [f"{exc}{hint}"]) from None
    public = key.public_key()
    return EvidenceKey(private=key, kid=key_id(public), public_b64=b64url(public_raw(public)))
