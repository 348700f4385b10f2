"""What the hub checks before it serves, and the HTTP server it runs: private files that others can read refuse
the start, inline secrets in a readable config warn, and uvicorn leaves signal handling to the hub."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from hub.config import HubConfig, inline_secrets
from hub.errors import ConfigError
from hub.keys import KEY_FILE
from runtime.keyfiles import KeyFileError, check_private, loose_mode

log = logging.getLogger(__name__)


def check_secrets(config: HubConfig) -> None:
    """Refuse to start with a private key or token that group or others can read (it may have leaked already)."""
    m, state = config.mqtt, config.hub.state_dir
    for path, what in ((m.key_file, "MQTT client key"), (m.ingest_key_file, "MQTT ingest client key"),
                       (state / KEY_FILE, "hub signing key"), (config.hub.tls_key_file, "API TLS key")):
        if path is not None:
            try:
                check_private(path, what)
            except KeyFileError as exc:
                raise ConfigError(str(exc)) from None


def warn_inline_secrets(config: HubConfig) -> None:
    source, held = config.source, inline_secrets(config)
    if held and source is not None and Path(source).is_file() and loose_mode(Path(source)) is not None:
        log.warning("%s holds secrets inline (%s) but is readable by group or others: chmod 600 it, or move "
                    "them out (dozor hub check-config lists this too)", source, ", ".join(held))


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the hub handles SIGINT/SIGTERM and shuts down cleanly."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def warn_plain_forwarding(config: HubConfig, leading_url: str) -> None:
    """Followers send operators' tokens to the leader's advertised URL: over plain HTTP to another machine, anyone
    on that network path can read them."""
    host = urlsplit(leading_url).hostname or ""
    if leading_url.startswith("http://") and host not in ("localhost", "::1") and not host.startswith("127."):
        log.warning("[hub] advertise_url %s is plain HTTP: followers forward operators' requests and tokens to it "
                    "in clear text; serve the API over HTTPS ([hub] tls_cert_file/tls_key_file, or a TLS front) "
                    "and advertise https:// (docs/operations.md)", leading_url)
