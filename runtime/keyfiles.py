"""Secret files (private keys, tokens): written with mode 0600, and refused when group or others can read them.

``write_secret`` creates the file 0600 from the start (never a window with wider modes) and replaces it
atomically. ``check_private`` is what a service calls on each key file before it starts: a key readable by
group or others has leaked already as far as dozor can know, so the service refuses to run with it.

Ed25519 key files (a gateway's identity and evidence keys, the hub's signing keys) are one line, the base64url
raw seed: ``load_or_create`` generates one at first use (O_EXCL: two concurrent starts never overwrite each
other, the loser reads the winner's key), ``load`` reads one (``strict``: refused if group/others can read it).
The key itself is never logged, only its path and key id.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.command import key_id, private_key_from_seed_b64, private_seed_b64
from contract.errors import DozorError

log = logging.getLogger("dozor.runtime.keyfiles")


class KeyFileError(DozorError):
    """A secret file is missing, unreadable or readable by group/others."""


def write_secret(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def loose_mode(path: Path) -> int | None:
    """The group/other permission bits of ``path`` if any are set, else None."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    return mode if mode & 0o077 else None


def check_private(path: Path, what: str = "key file") -> Path:
    """Raise KeyFileError unless ``path`` exists and only its owner may read it."""
    path = Path(path)
    try:
        mode = loose_mode(path)
    except OSError as exc:
        raise KeyFileError(f"{what} {path}: {exc.strerror or exc}") from None
    if mode is not None:
        raise KeyFileError(f"{what} {path} is readable by group or others (mode {mode:04o}); "
                           f"refusing to start. Fix it with: chmod 600 {path}")
    return path


# ---------------------------------------------------------------- Ed25519 key files

def write_new(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` to a new file (mode 0600, O_EXCL: FileExistsError if it exists), fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(private_seed_b64(key) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def load(path: Path, *, strict: bool = True, what: str = "key file") -> Ed25519PrivateKey:
    """Read an Ed25519 key file. ``strict``: refuse one that group or others can read (else log it)."""
    path = Path(path)
    try:
        if strict:
            check_private(path, what)
        elif (mode := loose_mode(path)) is not None:
            log.error("%s %s is readable by others (mode %04o): chmod 600 it", what, path, mode)
        return private_key_from_seed_b64(path.read_text())
    except OSError as exc:
        raise KeyFileError(f"{what} {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise KeyFileError(f"{what} {path} is damaged ({exc})") from None


def load_or_create(path: Path, *, what: str = "key", strict: bool = True) -> tuple[Ed25519PrivateKey, bool]:
    """Return (key, created). Creates the parent folder and the key on first use."""
    path = Path(path)
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
            raise KeyFileError(f"{what} {path}: cannot create: {exc.strerror or exc}") from None
    return load(path, strict=strict, what=what), created
