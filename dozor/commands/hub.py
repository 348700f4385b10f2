"""`dozor hub init DIR`, `dozor hub run --config F`, `dozor hub pubkey --config F` and `dozor hub migrate --config F`
(hub_migrate.py).

``hub init`` exit codes: 0 written; 1 DIR already holds a hub.toml; 2 bad arguments.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import typer

from dozor.commands import _loop
from dozor.commands._common import state_dir_error
from hub.errors import HubError


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="The central hub: alerts, registry, API.")
    app.add_typer(group, name="hub")

    @group.command("run")
    def run(config: Path = typer.Option(..., "--config", "-c", help="hub TOML config"),
            log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING, ERROR")) -> None:
        """Run the hub (MQTT, alert engine, HTTP API) until Ctrl-C."""
        from hub.app import Hub
        from hub.config import load_config

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from runtime.ratelog import per_request_logs_to_debug

        per_request_logs_to_debug(log_level)  # no INFO line per TSDB write
        from runtime import memtrim

        memtrim.limit_arenas(2)  # before any thread: freed heap of worker threads is not kept in 16 arenas
        try:
            hub = Hub(load_config(config))
        except HubError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:  # the state dir or a key file, at start: usually the wrong user
            typer.echo(f"error: {state_dir_error(exc)}", err=True)
            raise typer.Exit(2) from None
        from runtime import gctune

        gctune.settle()  # the start-up heap out of the collector's way, fewer older passes (runtime/gctune.py)
        try:
            with contextlib.suppress(KeyboardInterrupt):
                _loop.run(hub.run(handle_signals=True))
        except HubError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    @group.command("check-config")
    def check_config(config: Path = typer.Argument(..., help="hub TOML config"),
                     as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """Validate a hub config, its zones and shelters files and its key files; list every mistake.
        Exit 0 ok, 2 mistakes found."""
        from hub.config_check import check_config as check

        cfg, problems = check(config)
        if problems:
            if as_json:
                typer.echo(json.dumps({"ok": False, "file": str(config), "problems": [str(p) for p in problems],
                                       "details": [p.to_dict() for p in problems]}, indent=2))
            else:
                typer.echo(f"{config}: {len(problems)} problem(s) in the hub config:", err=True)
                for p in problems:
                    typer.echo(f"  {p.file}:{p.line or '-'}: {p.key or '(file)'}: {p.message}", err=True)
            raise typer.Exit(2)
        assert cfg is not None
        summary = {"ok": True, "file": str(config), "state_dir": str(cfg.hub.state_dir), "api": cfg.api_url,
                   "mqtt": cfg.mqtt.shown, "zones": str(cfg.hub.zones), "store": cfg.store.kind,
                   "residents": cfg.residents is not None}
        if as_json:
            typer.echo(json.dumps(summary, indent=2))
            return
        typer.echo(f"ok {config}: API {summary['api']}, broker {summary['mqtt']}, zones {summary['zones']}, "
                   f"store {summary['store']}, state {summary['state_dir']}")

    @group.command("init")
    def init(directory: Path = typer.Argument(..., help="the new deployment's folder (created)"),
             broker: str = typer.Option("mqtt://127.0.0.1:1883", "--broker", help="MQTT broker URL"),
             listen: str = typer.Option("127.0.0.1:8080", "--listen", help="API address HOST:PORT"),
             zones: Path | None = typer.Option(None, "--zones", help="zones JSON file [default: an empty list "
                                                                     "in DIR/zones.json to fill in]"),
             as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """Write DIR/hub.toml (state dir inside DIR), create the `admin` user, print its token once and keep it
        in DIR/admin-token (0600)."""
        from dozor.commands._common import fail
        from dozor.commands.hub_init import InitError, init_hub

        try:
            result = init_hub(directory, broker=broker, listen=listen, zones=zones)
        except InitError as exc:
            fail(str(exc), as_json=as_json, code=exc.code)
        except OSError as exc:  # e.g. `dozor hub init /etc/dozor` without root
            fail(f"cannot write the hub's folder: {exc.filename or directory}: {exc.strerror or exc}",
                 as_json=as_json, code=1)
        if as_json:
            typer.echo(json.dumps(result))
            return
        typer.echo(f"wrote {result['config']} (state in {result['state_dir']}); admin token in "
                   f"{result['admin_token_file']} (0600), shown once below. Start it with:\n"
                   f"  dozor hub run --config {result['config']}", err=True)
        typer.echo(result["token"])

    @group.command("pubkey")
    def pubkey(config: Path = typer.Option(..., "--config", "-c", help="hub TOML config"),
               as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """Print the [trust.hub_keys] lines for gateway.toml: the active key and every staged key (creates the
        first key on first use). Paste them into each gateway's config in place of its [trust.hub_keys] table."""
        from hub.config import load_config
        from hub.keys import load_or_create

        try:
            cfg = load_config(config)
            keys = load_or_create(cfg.hub.state_dir, cfg.hub.extra_verify_keys)
        except HubError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            typer.echo(f"error: {state_dir_error(exc)}", err=True)
            raise typer.Exit(2) from None
        pinned = keys.public_keys_b64()
        if as_json:
            typer.echo(json.dumps({"kid": keys.kid, "public_key": keys.public_b64,
                                   "extra": {k: v for k, v in pinned.items() if k != keys.kid}, "hub_keys": pinned}))
            return
        typer.echo(pubkey_lines(keys.kid, pinned), nl=False)

    from dozor.commands import hub_keys, hub_migrate

    hub_keys.attach(group)
    hub_migrate.attach(group)


def pubkey_lines(active: str, pinned: dict[str, str]) -> str:
    """TOML that gateway.toml accepts as its [trust.hub_keys] table (tests paste it into a config and load it)."""
    lines = ["# dozor hub signing keys: pin all of them in every gateway config (gateway.toml)", "[trust.hub_keys]"]
    for kid, pub in pinned.items():
        lines.append(f'"{kid}" = "{pub}"  # {"active" if kid == active else "staged: active after rotation"}')
    return "\n".join(lines) + "\n"
