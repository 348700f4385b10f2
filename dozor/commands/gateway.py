"""`dozor gateway run --config F`, `check-config F` and `evidence-key F`: thin wrappers over gateway/."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import typer

from dozor.commands._common import JsonOpt, console, emit_json, err_console, fail

EXIT_CONFIG = 2


def _load(path: Path, as_json: bool):
    from gateway.config import load_config
    from gateway.errors import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        if as_json:
            emit_json({"ok": False, "file": exc.file, "problems": exc.problems,
                       "details": [d.to_dict() for d in exc.details]})
            raise typer.Exit(EXIT_CONFIG) from None
        if exc.details:  # one line per mistake: FILE:LINE: key: sentence
            lines = "\n".join(f"  {d.file}:{d.line or '-'}: {d.key or '(file)'}: {d.message}" for d in exc.details)
            fail(f"{exc.file}: {len(exc.details)} problem(s) in the gateway config:\n{lines}", code=EXIT_CONFIG)
        fail(str(exc), code=EXIT_CONFIG)


async def _run(cfg) -> None:
    from gateway.app import Gateway
    from gateway.errors import GatewayError

    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await Gateway(cfg).run()
    except asyncio.CancelledError:
        logging.getLogger("dozor.gateway").info("stopping (signal): devices stopped, state saved")
    except GatewayError as exc:
        fail(f"gateway {cfg.gateway.id} cannot run: {exc}")


def register(app: typer.Typer) -> None:
    gw = typer.Typer(no_args_is_help=True, help="The street-cabinet gateway service")
    app.add_typer(gw, name="gateway")

    @gw.command("run")
    def run(config: Path = typer.Option(..., "--config", "-c", help="gateway TOML config"),
            log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING, ERROR")) -> None:
        """Run the gateway until SIGINT/SIGTERM (activations are stopped on the way out)."""
        cfg = _load(config, False)
        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
        from runtime.ratelog import per_request_logs_to_debug

        per_request_logs_to_debug(log_level)  # no INFO line per TSDB write
        from dozor.commands import _loop

        _loop.run(_run(cfg))  # uvloop where installed: less CPU per event-loop wake-up (docs/benchmarks.md)

    @gw.command("check-config")
    def check_config(config: Path = typer.Argument(..., help="gateway TOML config"), as_json: bool = JsonOpt) -> None:
        """Validate a config (keys, buses, devices, pinned assets) and print a summary."""
        from contract.command import PUBLISHED_TEST_KIDS

        cfg = _load(config, as_json)
        warnings = [f"hub key {kid} is a PUBLISHED TEST KEY: its private seed is in the dozor repository, so anyone "
                    "can sign commands this gateway obeys. Pin your hub's keys (dozor hub pubkey) instead."
                    for kid in sorted(cfg.trust.hub_keys) if kid in PUBLISHED_TEST_KIDS]
        summary = {"ok": True, "gateway": cfg.gateway.id, "zone": cfg.gateway.zone, "mqtt": cfg.mqtt.shown,
                   "hub_keys": sorted(cfg.trust.hub_keys), "buses": [b.name for b in cfg.bus],
                   "devices": [{"id": d.id, "kind": d.kind} for d in cfg.device], "warnings": warnings}
        for w in warnings:
            err_console.print(f"[bold red]WARNING:[/] {w}")
        if as_json:
            emit_json(summary)
            return
        console.print(f"[green]ok[/] {config}: gateway {cfg.gateway.id} (zone {cfg.gateway.zone or '-'}), "
                      f"{len(cfg.bus)} bus(es), {len(cfg.device)} device(s), "
                      f"{len(cfg.trust.hub_keys)} hub key(s), broker {cfg.mqtt.shown}")
        for d in cfg.device:
            console.print(f"  {d.kind:<10} {d.id}")

    @gw.command("identity")
    def identity(config: Path = typer.Argument(..., help="gateway TOML config"), as_json: bool = JsonOpt) -> None:
        """Print the gateway's identity key (created in state_dir if missing) and the command that enrolls it."""
        from gateway.errors import ConfigError
        from gateway.identity import key_path, load_or_create

        cfg = _load(config, as_json)
        try:
            ident = load_or_create(cfg.gateway.state_dir)
        except ConfigError as exc:
            fail(str(exc), code=EXIT_CONFIG, as_json=as_json)
        out = {"gateway": cfg.gateway.id, "kid": ident.kid, "public_key": ident.public_b64,
               "key_file": str(key_path(cfg.gateway.state_dir))}
        if as_json:
            emit_json(out)
            return
        console.print(f"gateway {cfg.gateway.id}: identity key id {ident.kid}\n"
                      f"enroll it on the hub:  dozor gateways enroll {cfg.gateway.id} --pubkey {ident.public_b64}")

    @gw.command("evidence-key")
    def evidence_key(config: Path = typer.Argument(..., help="gateway TOML config"),
                     as_json: bool = JsonOpt) -> None:
        """Print the gateway's evidence key (created in state_dir if missing), to pin it on the hub."""
        from gateway.errors import ConfigError
        from gateway.evidence_key import load_or_create

        cfg = _load(config, as_json)
        try:
            key = load_or_create(cfg.gateway.state_dir)
        except ConfigError as exc:
            fail(str(exc), code=EXIT_CONFIG)
        out = {"gateway": cfg.gateway.id, "kid": key.kid, "public_key": key.public_b64}
        if as_json:
            emit_json(out)
            return
        console.print(f"gateway {cfg.gateway.id}: evidence key id {key.kid}\n"
                      f"pin it on the hub:  \"{key.kid}\" = \"{key.public_b64}\"")
