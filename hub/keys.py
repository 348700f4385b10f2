"""The hub's Ed25519 signing key: generated at first start into state_dir (mode 0600), reused afterwards.

Extra verification keys (older hub public keys) are announced alongside during a key rotation, so
gateways can pin the new kid before the old one is retired.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contract.command import (
    b64url,
    key_id,
    private_key_from_seed_b64,
    private_seed_b64,
    public_key_from_b64,
    public_raw,
)
from hub.errors import ConfigError

log = logging.getLogger(__name__)
KEY_FILE = "hub-signing-key"


@dataclass(frozen=True)
class HubKeys:
    private: Ed25519PrivateKey
    kid: str
    public_b64: str
    extra: dict[str, Ed25519PublicKey] = field(default_factory=dict)

    @property
    def all_kids(self) -> tuple[str, ...]:
        return (self.kid, *self.extra)

    def verification_keys(self) -> dict[str, Ed25519PublicKey]:
        return {self.kid: self.private.public_key(), **self.extra}


def write_private(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 atomically-enough: O_EXCL so two starts never overwrite each other."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")


def load_or_create(state_dir: Path, extra_public: tuple[str, ...] = ()) -> HubKeys:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / KEY_FILE
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        try:
            write_private(path, private_seed_b64(key))
            log.warning("created a new hub signing key %s (kid %s): pin it on the gateways",
                        path, key_id(key.public_key()))
        except FileExistsError:
            pass  # created concurrently: read the winner's key below
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.error("hub signing key %s is readable by others (mode %o): chmod 600 it", path, mode & 0o777)
        key = private_key_from_seed_b64(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the hub signing key {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"hub signing key {path} is damaged: {exc}") from None
    extra = {}
    for text in extra_public:
        pub = public_key_from_b64(text)
        extra[key_id(pub)] = pub
    public = key.public_key()
    return HubKeys(private=key, kid=key_id(public), public_b64=b64url(public_raw(public)), extra=extra)
