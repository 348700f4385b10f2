"""`dozor sim city`: real gateway instances with simulated devices on ptys, against any broker."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Any

import typer

from dozor.commands import _loop
from dozor.commands._common import fail
from dozor.commands._sim import sim_app


def gateway_factory(config: dict[str, Any]):
    from gateway.app import Gateway
    from gateway.config import GatewayConfig

    return Gateway(GatewayConfig.model_validate(config))


def hub_keys_from(hub_state: Path | None, hub_key: list[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for item in hub_key:
        kid, sep, pub = item.partition("=")
        if not sep:
            raise ValueError(f"--hub-key takes KID=PUBLICKEY, got {item!r}")
        keys[kid] = pub
    if hub_state is not None:
        from contract import command as cc
        from hub.keys import KEY_FILE

        key = cc.private_key_from_seed_b64((hub_state / KEY_FILE).read_text())
        keys[cc.key_id(key.public_key())] = cc.b64url(cc.public_raw(key.public_key()))
    if not keys:
        raise ValueError("give the hub's public key: --hub-key KID=PUBLICKEY (see `dozor hub pubkey`) "
                         "or --hub-state DIR")
    return keys


def bundle_hub_keys(bundles: Path, gateway_ids: list[str]) -> dict[str, str]:
    """The hub keys pinned in the provisioned bundles (all the same; every planned gateway must have one)."""
    import tomllib

    keys: dict[str, str] = {}
    for gid in gateway_ids:
        path = bundles / gid / "gateway.toml"
        if not path.is_file():
            raise ValueError(f"{path} is missing: provision it first (dozor provision gateway {gid} --zone Z DIR)")
        keys.update(tomllib.loads(path.read_text())["trust"]["hub_keys"])
    return keys


def register(app: typer.Typer) -> None:
    sim = sim_app(app)

    @sim.command("city")
    def city(
        gateways: int = typer.Option(10, "--gateways", min=1, max=2000),
        sirens_per_gateway: int = typer.Option(3, "--sirens-per-gateway", min=1, max=32),
        speakers_per_gateway: int = typer.Option(0, "--speakers-per-gateway", min=0, max=4),
        zones: int | None = typer.Option(None, "--zones", min=1, help="default: one zone per 5 gateways"),
        first: int = typer.Option(1, "--first", min=1, help="number of the first gateway (gw-0001)"),
        broker: str = typer.Option("mqtt://127.0.0.1:1883", "--broker"),
        hub_key: list[str] = typer.Option([], "--hub-key", help="KID=PUBLICKEY of a trusted hub key"),
        hub_state: Path | None = typer.Option(None, "--hub-state", help="read the hub key from its state dir"),
        spinup_s: float = typer.Option(1.5, "--spinup-s", min=0.0, help="siren spin-up delay"),
        heartbeat_s: float = typer.Option(5.0, "--heartbeat-s", min=0.1),
        state_dir: Path = typer.Option(Path(".dozor/city"), "--state-dir"),
        write_zones: Path | None = typer.Option(None, "--write-zones", help="write the hub's zones file and exit"),
        bundles: Path | None = typer.Option(None, "--bundles", help="a provisioned city's gateways/ folder: each "
                                            "gateway connects with its own certificate and pins its bundle's "
                                            "hub keys (dozor provision gateway gw-0001 ...)"),
    ) -> None:
        """Run N gateways, each with its own MQTT connection and M sirens on a virtual RS-485 bus."""
        from simulators.city import City, CityPlan

        plan = CityPlan(gateways, sirens_per_gateway, speakers_per_gateway, zones, first)
        if write_zones is not None:
            write_zones.write_text(json.dumps(plan.zones_config(), indent=2) + "\n")
            typer.echo(f"wrote {write_zones} ({plan.zone_count} zones)")
            return
        try:
            keys = hub_keys_from(hub_state, hub_key) if bundles is None or hub_state or hub_key else \
                bundle_hub_keys(bundles, plan.gateway_ids())
        except (OSError, ValueError) as exc:
            fail(str(exc), code=2)
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # ~10 descriptors per simulated gateway
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")

        root = state_dir.resolve()

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            async with City(plan, broker, keys, root, gateway_factory, spinup_s=spinup_s,
                            heartbeat_s=heartbeat_s, bundles=bundles):
                typer.echo(f"city up: {gateways} gateways, {plan.sirens_total} sirens, broker {broker}", err=True)
                await stop.wait()

        _loop.run(main())
