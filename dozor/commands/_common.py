"""Shared CLI plumbing: hub connection options, JSON output, readable errors with non-zero exits."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console(stderr=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

DEFAULT_HUB = "http://127.0.0.1:8080"
TOKEN_FILES = (Path(".dozor/hub/api-token"), Path("/var/lib/dozor-hub/api-token"))

HubOpt = typer.Option(None, "--hub", envvar="DOZOR_HUB_URL", help=f"hub API URL [default: {DEFAULT_HUB}]")
TokenOpt = typer.Option(None, "--token", envvar=["DOZOR_TOKEN", "DOZOR_HUB_TOKEN"],
                        help="API bearer token (default: DOZOR_TOKEN_FILE, ./.dozor/hub/api-token, "
                             "/var/lib/dozor-hub/api-token)")
JsonOpt = typer.Option(False, "--json", help="print one JSON document instead of tables")

EXIT_ERROR = 1
EXIT_USAGE = 2  # contradictory or invalid arguments (as Typer/Click usage errors)
EXIT_PARTIAL = 3
EXIT_WAITING = 4  # `alert start`: waiting for a second operator (`dozor alert confirm ID`)


def resolve_token(token: str | None) -> str | None:
    if token:
        return token
    named = os.environ.get("DOZOR_TOKEN_FILE")
    if named:  # asked for by name: a file that cannot be read is an error, not a silent fall back to no token
        try:
            text = Path(named).read_text().strip()
        except OSError as exc:
            hint = (" (token files are 0600: run as the file's owner, or keep your own token in a file of yours)"
                    if isinstance(exc, PermissionError) else "")
            fail(f"cannot read DOZOR_TOKEN_FILE={named}: {exc.strerror or exc}{hint}", code=EXIT_USAGE)
        if not text:
            fail(f"DOZOR_TOKEN_FILE={named} is empty", code=EXIT_USAGE)
        return text
    candidates = list(TOKEN_FILES)
    for path in candidates:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return None


def client(hub: str | None, token: str | None):
    from dozor.client import HubClient

    raw = os.environ.get("DOZOR_LEADER_WAIT_S", "30")
    try:
        wait = max(0.0, float(raw))
    except ValueError:
        fail(f"DOZOR_LEADER_WAIT_S={raw!r} is not a number of seconds", code=EXIT_USAGE)
    return HubClient(hub or DEFAULT_HUB, resolve_token(token), leader_wait_s=wait,
                     on_wait=lambda why: err_console.print(f"[yellow]note:[/] {why}"))


def fail(message: str, *, as_json: bool = False, code: int = EXIT_ERROR) -> NoReturn:
    if as_json:
        print(json.dumps({"error": message}))
    else:
        err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def state_dir_error(exc: OSError) -> str:
    """One sentence for a hub state dir (or key file) that cannot be opened: usually the wrong user."""
    where = f"{exc.filename}: " if exc.filename else ""
    hint = (" (the hub's state dir belongs to the hub's user: run as that user, e.g. `sudo -u dozor-hub dozor ...`, "
            "or as root)" if isinstance(exc, PermissionError) else "")
    return f"cannot open the hub's state: {where}{exc.strerror or exc}{hint}"


def emit_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")
