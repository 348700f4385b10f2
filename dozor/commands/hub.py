"""`dozor hub run --config F` and `dozor hub pubkey --config F`."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import typer

from dozor.commands import _loop
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
        try:
            hub = Hub(load_config(config))
        except HubError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        try:
            with contextlib.suppress(KeyboardInterrupt):
                _loop.run(hub.run(handle_signals=True))
        except HubError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    @group.command("pubkey")
    def pubkey(config: Path = typer.Option(..., "--config", "-c", help="hub TOML config"),
               as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
        """Print the hub's key id and public key for gateway configs (creates the key on first use)."""
        from hub.config import load_config
        from hub.keys import load_or_create

        try:
            cfg = load_config(config)
            keys = load_or_create(cfg.hub.state_dir, cfg.hub.extra_verify_keys)
        except HubError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        from contract.command import b64url, public_raw

        extra = {kid: b64url(public_raw(pub)) for kid, pub in keys.extra.items()}
        if as_json:
            typer.echo(json.dumps({"kid": keys.kid, "public_key": keys.public_b64, "extra": extra}))
            return
        typer.echo("# dozor hub signing key: pin it in every gateway config")
        typer.echo(f'kid = "{keys.kid}"')
        typer.echo(f'public_key = "{keys.public_b64}"')
        for kid, pub in extra.items():
            typer.echo(f'# still trusted during rotation: kid = "{kid}"  public_key = "{pub}"')
