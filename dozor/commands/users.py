"""`dozor users add|list|disable|rotate-token --config DIR/hub.toml`: the hub's users, offline.

They work on the hub's state dir (from the config) and also while the hub runs: the hub reads the user store on
every request, so a new user, a disabled one or a rotated token takes effect at once. Each change is an audit
record by ``local:<login name>`` (someone with access to the hub's state dir). A new token is printed once, alone
on stdout (``TOKEN=$(dozor users add ...)``); the explanation goes to stderr.

Exit codes: 0 done; 1 refused (unknown user, existing name); 2 bad config or arguments.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer

from dozor.commands._common import JsonOpt, console, emit_json, err_console, fail, state_dir_error

ConfigOpt = typer.Option(..., "--config", "-c", help="the hub's TOML config (its state dir holds the users)")


def local_actor():
    from hub.identity import Actor, Role

    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(f"local:{who}", Role.admin, "local")


def _open(config: Path, as_json: bool):
    from hub.audit import AuditLog
    from hub.config import load_config
    from hub.errors import HubError
    from hub.identity import UserStore

    try:
        cfg = load_config(config)
        backend = cfg.backend()
        return UserStore.in_backend(backend), AuditLog.in_backend(backend)
    except HubError as exc:
        fail(str(exc), as_json=as_json, code=2)
    except OSError as exc:  # sqlite3 errors are not OSErrors: the state dir's creation is where a wrong user fails
        fail(state_dir_error(exc), as_json=as_json, code=2)


def _guard(as_json: bool, fn):
    from hub.errors import HubError
    from hub.identity import IdentityError

    try:
        return fn()
    except IdentityError as exc:
        fail(str(exc), as_json=as_json, code=1)
    except HubError as exc:
        fail(str(exc), as_json=as_json, code=2)


def _show_token(user, token: str, as_json: bool, what: str) -> None:
    if as_json:
        print(json.dumps({"name": user.name, "role": user.role.value, "token": token}))
        return
    err_console.print(f"{what} {user.name} ({user.role.value}). The token below is shown once: hand it to "
                      f"{user.name} (DOZOR_TOKEN or --token). The hub keeps only its hash.")
    print(token)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="The hub's users: named people in roles, each with a token.")
    app.add_typer(group, name="users")

    @group.command("add")
    def add(name: str = typer.Argument(..., help="user name (letters, digits, . _ @ -)"),
            role: str = typer.Option(..., "--role", help="viewer, operator, supervisor, noise-reviewer, "
                                                          "technician or admin"),
            config: Path = ConfigOpt, as_json: bool = JsonOpt) -> None:
        """Create a user and print their token once."""
        users, audit = _open(config, as_json)

        def go():
            user, token = users.add(name, role)
            audit.append(local_actor(), "user.add", user.name, {"role": user.role.value})
            return user, token

        user, token = _guard(as_json, go)
        _show_token(user, token, as_json, "created user")

    @group.command("list")
    def list_(config: Path = ConfigOpt, as_json: bool = JsonOpt) -> None:
        """Users, their roles, enabled or disabled (never tokens)."""
        users, _ = _open(config, as_json)
        rows = _guard(as_json, users.list)
        if as_json:
            emit_json([u.as_dict() for u in rows])
            return
        from rich.table import Table

        table = Table("user", "role", "state", box=None, pad_edge=False)
        for u in rows:
            table.add_row(u.name, u.role.value, "disabled" if u.disabled else "enabled")
        console.print(table)

    @group.command("disable")
    def disable(name: str = typer.Argument(...), config: Path = ConfigOpt, as_json: bool = JsonOpt) -> None:
        """Disable a user: their token is refused from the next request on."""
        users, audit = _open(config, as_json)

        def go():
            user = users.disable(name)
            audit.append(local_actor(), "user.disable", user.name, {"role": user.role.value})
            return user

        user = _guard(as_json, go)
        if as_json:
            emit_json(user.as_dict())
        else:
            console.print(f"disabled {user.name} ({user.role.value})")

    @group.command("rotate-token")
    def rotate(name: str = typer.Argument(...), config: Path = ConfigOpt, as_json: bool = JsonOpt) -> None:
        """A new token for a user, printed once; the old one stops working at once."""
        users, audit = _open(config, as_json)

        def go():
            user, token = users.rotate(name)
            audit.append(local_actor(), "user.rotate_token", user.name, {"role": user.role.value})
            return user, token

        user, token = _guard(as_json, go)
        _show_token(user, token, as_json, "new token for")
