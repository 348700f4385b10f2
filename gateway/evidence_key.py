"""The gateway's own Ed25519 evidence key: signs noise evidence records (``contract.evidence``).

Generated at first start into ``state_dir/evidence-key`` (base64url raw seed, mode 0600, created with
O_EXCL so two starts never overwrite each other), reused afterwards. Its public half is announced in every
birth (``GatewayState.evidence_key``); the hub pins it and verifies evidence with it. The key never leaves
the gateway; losing the file means a new key and a new kid (old records still verify with the old key).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.command import b64url, key_id, private_key_from_seed_b64, private_seed_b64, public_raw
from gateway.errors import ConfigError

log = logging.getLogger("dozor.gateway")
KEY_FILE = "evidence-key"


@dataclass(frozen=True)
class EvidenceKey:
    private: Ed25519PrivateKey
    kid: str
    public_b64: str  # base64url raw public key, as announced in the birth


def load_or_create(state_dir: Path) -> EvidenceKey:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / KEY_FILE
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(private_seed_b64(key) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            log.warning("created a new evidence signing key %s (kid %s)", path, key_id(key.public_key()))
        except FileExistsError:
            pass  # created concurrently: read the winner's key below
        except OSError as exc:
            raise ConfigError(str(path), [f"cannot create the evidence key: {exc.strerror or exc}"]) from None
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.error("evidence key %s is readable by others (mode %o): chmod 600 it", path, mode & 0o777)
        key = private_key_from_seed_b64(path.read_text())
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the evidence key: {exc.strerror or exc}"]) from None
    except ValueError as exc:
        raise ConfigError(str(path), [f"the evidence key is damaged ({exc}); move it away to make a new one "
                                      "(the hub must then pin the new key)"]) from None
    public = key.public_key()
    return EvidenceKey(private=key, kid=key_id(public), public_b64=b64url(public_raw(public)))
