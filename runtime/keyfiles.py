"""Ed25519 private key files: base64url raw seed, one line, mode 0600, created with O_EXCL.

Shared by every key the system keeps on disk: a gateway's identity key and evidence key, the hub's signing
keys. ``load_or_create`` generates the key at first use (two concurrent starts never overwrite each other:
the loser reads the winner's key). ``strict=True`` refuses a file that its group or the world can read
(:class:`KeyFileError`); ``strict=False`` only logs it (the evidence key's historic behaviour).
The key itself is never logged, only its path and key id.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.command import key_id, private_key_from_seed_b64, private_seed_b64

log = logging.getLogger("dozor.runtime.keyfiles")


class KeyFileError(Exception):
    """A key file cannot be created, read, parsed, or is readable by others (strict mode)."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def write_new(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` to a new file (mode 0600, O_EXCL: FileExistsError if it exists), fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(private_seed_b64(key) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def check_mode(path: Path, *, strict: bool) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        if strict:
            raise KeyFileError(path, f"readable by others (mode {mode & 0o777:o}): chmod 600 it")
        log.error("key file %s is readable by others (mode %o): chmod 600 it", path, mode & 0o777)


def load(path: Path, *, strict: bool = True) -> Ed25519PrivateKey:
    try:
        check_mode(path, strict=strict)
        return private_key_from_seed_b64(path.read_text())
    except OSError as exc:
        raise KeyFileError(path, f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise KeyFileError(path, f"damaged ({exc})") from None


def load_or_create(path: Path, *, what: str = "key", strict: bool = True) -> tuple[Ed25519PrivateKey, bool]:
    """Return (key, created). Creates the parent folder and the key on first use."""
    created = False
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_new(path, key)
            created = True
            log.warning("created a new %s %s (kid %s)", what, path, key_id(key.public_key()))
        except FileExistsError:
            pass  # created concurrently: read the winner's key below
        except OSError as exc:
            raise KeyFileError(path, f"cannot create the {what}: {exc.strerror or exc}") from None
    return load(path, strict=strict), created
