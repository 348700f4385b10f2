"""`dozor hub migrate --config F`: bring the hub's state schema ([database]: SQLite files or PostgreSQL) to this
version of dozor, one command for the deployer. ``--check`` changes nothing and tells whether a migration is due.

Exit codes: 0 done (or, with --check, nothing due); 1 the database refused or is unreachable, or (--check) a
migration is due; 2 a bad config or password source.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dozor.commands._common import fail


def attach(group: typer.Typer) -> None:
    @group.command("migrate")
    def migrate(config: Path = typer.Option(..., "--config", "-c", help="hub TOML config ([database] says where)"),
                check: bool = typer.Option(False, "--check", help="change nothing: exit 1 if a migration is due"),
                as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """Create or upgrade the hub's state schema (every table of every component), then print what was
        applied. Safe to run again and from several machines at once (a lock serialises them)."""
        from hub.config import load_config
        from hub.errors import ConfigError, HubError

        try:
            backend = load_config(config).backend()
        except ConfigError as exc:
            fail(str(exc), as_json=as_json, code=2)
        try:
            if check:
                rows = backend.status()
                due = [r for r in rows if r["version"] < r["needed"]]
                out = {**backend.describe(), "components": rows, "due": [r["component"] for r in due]}
            else:
                out = {**backend.describe(), "components": backend.migrate()}
        except HubError as exc:
            fail(str(exc), as_json=as_json, code=1)
        except OSError as exc:
            fail(f"cannot open the hub's state: {exc.filename or ''} {exc.strerror or exc}", as_json=as_json, code=1)
        if as_json:
            typer.echo(json.dumps(out))
        elif check:
            typer.echo(f"{out['backend']} {out['where']}: " + (
                f"migration due for {', '.join(out['due'])} (run `dozor hub migrate --config {config}`)"
                if out["due"] else "schema is current"))
        else:
            applied = [f"{c['component']} {c['from']}->{c['to']}" for c in out["components"] if c["applied"]]
            typer.echo(f"{out['backend']} {out['where']}: " + (
                f"migrated {', '.join(applied)}" if applied else "schema already current"))
        if check and out["due"]:
            raise typer.Exit(1)
