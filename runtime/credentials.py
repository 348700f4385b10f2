"""Key files handed over by systemd's ``LoadCredential=NAME:PATH``.

A service runs as its own unprivileged user and cannot read keys owned by root in /etc; systemd reads them and
places a private copy in ``$CREDENTIALS_DIRECTORY/NAME``. So the same config works under systemd and anywhere
else: a configured key or certificate file whose name matches a loaded credential is read from there.
"""

from __future__ import annotations

import os
from pathlib import Path


def resolve(path: Path | None) -> Path | None:
    """``$CREDENTIALS_DIRECTORY/<name of path>`` when systemd loaded a credential of that name, else ``path``."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if path is None or not creds:
        return path
    candidate = Path(creds) / path.name
    return candidate if candidate.is_file() else path
