"""``dozor hub init DIR``: a new deployment in one command (see dozor/commands/hub.py for the command)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from dozor.commands.users import local_actor


class InitError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InitError(f"--listen {text!r}: expected HOST:PORT, e.g. 0.0.0.0:8080", code=2)
    return host, int(port)


def init_hub(directory: Path, *, broker: str, listen: str, zones: Path | None) -> dict:
    from contract.broker import BrokerAddress
    from hub.audit import AuditLog
    from hub.config import load_config
    from hub.errors import HubError
    from hub.identity import Role, UserStore
    from hub.keys import load_or_create, write_private

    host, port = _listen(listen)
    try:
        BrokerAddress(url=broker)
    except ValueError as exc:  # pydantic's ValidationError: its first message, without the library's framing
        msg = exc.errors()[0]["msg"].removeprefix("Value error, ") if hasattr(exc, "errors") else str(exc)
        raise InitError(f"--broker {broker!r}: {msg}", code=2) from None
    directory = directory.resolve()
    config = directory / "hub.toml"
    if config.exists():
        raise InitError(f"{config} already exists: this folder holds a hub (add users with `dozor users add "
                        f"NAME --role ROLE --config {config}`)")
    if zones is not None and not zones.is_file():
        raise InitError(f"--zones {zones}: no such file", code=2)
    directory.mkdir(parents=True, exist_ok=True)
    zones_ref = str(zones.resolve()) if zones is not None else "zones.json"
    if zones is None and not (directory / "zones.json").exists():
        (directory / "zones.json").write_text("[]\n")
    state = directory / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    metrics_token = directory / "metrics-token"
    if not metrics_token.exists():
        write_private(metrics_token, secrets.token_urlsafe(32))
    config.write_text(
        "# written by `dozor hub init`; see hub/config.py for every key\n"
        "[hub]\n"
        'state_dir = "state"\n'
        f"api_host = {json.dumps(host)}\n"
        f"api_port = {port}\n"
        f"zones = {json.dumps(zones_ref)}\n"
        'metrics_token_file = "metrics-token"   # Prometheus: bearer_token_file pointing at this file\n'
        "\n[mqtt]\n"
        f"url = {json.dumps(broker)}\n")
    try:
        cfg = load_config(config)
        keys = load_or_create(cfg.hub.state_dir, cfg.hub.extra_verify_keys)
        users = UserStore.in_backend(cfg.backend())
        try:
            user, token = users.add("admin", Role.admin)
        finally:
            users.close()
        audit = AuditLog.in_backend(cfg.backend())
        try:
            audit.append(local_actor(), "hub.init", str(directory), {"kid": keys.kid})
            audit.append(local_actor(), "user.add", user.name, {"role": user.role.value})
        finally:
            audit.close()
    except HubError as exc:
        raise InitError(str(exc), code=2) from None
    token_file = directory / "admin-token"
    token_file.unlink(missing_ok=True)
    write_private(token_file, token)
    return {"config": str(config), "state_dir": str(cfg.hub.state_dir), "admin_token_file": str(token_file),
            "metrics_token_file": str(metrics_token), "user": user.name, "role": user.role.value, "kid": keys.kid,
            "public_key": keys.public_b64, "token": token}
