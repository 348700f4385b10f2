"""Secret files (private keys, tokens): written with mode 0600, and refused when group or others can read them.

``write_secret`` creates the file 0600 from the start (never a window with wider modes) and replaces it
atomically. ``check_private`` is what a service calls on each key file before it starts: a key readable by
group or others has leaked already as far as dozor can know, so the service refuses to run with it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from contract.errors import DozorError


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
