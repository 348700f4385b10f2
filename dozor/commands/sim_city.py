"""`dozor sim city`: real gateway instances with simulated devices on ptys, against any broker."""

from __future__ import annotations

import asyncio
import json
import logging
import os
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


def enrolling_factory(hub_state_dir):
    """A gateway factory that first enrolls each gateway's identity key in the hub's trust store (as
    `dozor gateways enroll` does), so a hub that checks signatures accepts the simulated city. ``hub_state_dir``:
    a state dir (SQLite) or the hub's state backend (``hub.repo.Backend``: PostgreSQL too)."""
    from gateway.identity import load_or_create
    from hub.gwtrust import enroll

    def factory(config: dict[str, Any]):
        ident = load_or_create(Path(config["gateway"]["state_dir"]))
        enroll(hub_state_dir, config["gateway"]["id"], ident.public_b64, actor="sim city", reason="simulated city")
        return gateway_factory(config)

    return factory


def hub_from_config(hub_config: Path):
    """(hub state backend, every key the hub announces: active and staged) from the hub's TOML config."""
    from hub.config import load_config
    from hub.keys import load_or_create

    cfg = load_config(hub_config)
    return cfg.backend(), load_or_create(cfg.hub.state_dir, cfg.hub.extra_verify_keys).public_keys_b64()


def hub_keys_from(hub_state: Path | None, hub_key: list[str]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for item in hub_key:
        kid, sep, pub = item.partition("=")
        if not sep:
            raise ValueError(f"--hub-key takes KID=PUBLICKEY, got {item!r}")
        keys[kid] = pub
    if hub_state is not None:  # the hub's announced keys (active and staged), as `dozor hub pubkey` prints them
        from hub.keys import KeyRing

        keys.update(KeyRing(hub_state).load().public_keys_b64())
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
        broker: list[str] = typer.Option(["mqtt://127.0.0.1:1883"], "--broker",
                                         help="the broker URL; for a clustered broker give each node (repeat "
                                         "--broker, or separate the URLs with commas)"),
        broker_user: str | None = typer.Option(None, "--broker-user", help="the broker login of every gateway "
                                               "(its password from $DOZOR_BROKER_PASSWORD), e.g. on a NATS cluster"),
        hub_key: list[str] = typer.Option([], "--hub-key", help="KID=PUBLICKEY of a trusted hub key"),
        hub_state: Path | None = typer.Option(None, "--hub-state", help="the hub's state dir: trust its keys and "
                                              "enroll the gateways there"),
        hub_config: Path | None = typer.Option(None, "--hub-config", help="the hub's TOML config: trust its active "
                                               "and staged keys and enroll every gateway's identity key there"),
        spinup_s: float = typer.Option(1.5, "--spinup-s", min=0.0, help="siren spin-up delay"),
        heartbeat_s: float = typer.Option(5.0, "--heartbeat-s", min=0.1),
        state_dir: Path = typer.Option(Path(".dozor/city"), "--state-dir"),
        write_zones: Path | None = typer.Option(None, "--write-zones", help="write the hub's zones file and exit"),
        bundles: Path | None = typer.Option(None, "--bundles", help="a provisioned city's gateways/ folder: each "
                                            "gateway connects with its own certificate and pins its bundle's "
                                            "hub keys (dozor provision gateway gw-0001 ...)"),
        lite: bool = typer.Option(False, "--lite", help="lite gateways for city-scale load: each keeps its own MQTT "
                                  "connection, identity key, signed birth, heartbeats and acks and verifies every "
                                  "command with the contract, but its sirens are state machines in memory (no pty, "
                                  "no Modbus); sirens only (simulators/city_lite.py)"),
    ) -> None:
        """Run N gateways, each with its own MQTT connection and M sirens on a virtual RS-485 bus."""
        from pydantic import ValidationError

        from contract.broker import BrokerAddress
        from simulators.city import City, CityPlan

        plan = CityPlan(gateways, sirens_per_gateway, speakers_per_gateway, zones, first)
        brokers = ",".join(u.strip() for b in broker for u in b.split(",") if u.strip())
        try:
            BrokerAddress(urls=tuple(brokers.split(",")))
        except ValidationError as exc:
            fail("--broker: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors()), code=2)
        if write_zones is not None:
            write_zones.write_text(json.dumps(plan.zones_config(), indent=2) + "\n")
            typer.echo(f"wrote {write_zones} ({plan.zone_count} zones)")
            return
        if lite and (bundles is not None or speakers_per_gateway):
            fail("--lite simulates sirens over a plain or password broker login only: drop --bundles and "
                 "--speakers-per-gateway (or --lite)", code=2)
        from hub.errors import HubError

        enroll_at = None  # where the lite city enrolls its gateways' identity keys (the hub's state)
        factory = gateway_factory
        try:
            if hub_config is not None:
                enroll_dir, keys = hub_from_config(hub_config)
                keys.update(hub_keys_from(None, hub_key) if hub_key else {})
                factory, enroll_at = enrolling_factory(enroll_dir), enroll_dir
            elif bundles is not None and not hub_state and not hub_key:
                keys = bundle_hub_keys(bundles, plan.gateway_ids())
            else:
                keys = hub_keys_from(hub_state, hub_key)
                if hub_state is not None:  # the hub's own state dir: enroll there too, as --hub-config does
                    factory, enroll_at = enrolling_factory(hub_state), hub_state
        except (OSError, ValueError, HubError) as exc:
            fail(str(exc), code=2)
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # ~10 descriptors per simulated gateway
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")

        root = state_dir.resolve()
        login: dict[str, str] = {}
        if broker_user is not None:
            password = os.environ.get("DOZOR_BROKER_PASSWORD")
            if not password:
                fail("--broker-user needs the password in $DOZOR_BROKER_PASSWORD (never on the command line)", code=2)
            login = {"username": broker_user, "password": password}

        if lite:
            _loop.run(run_lite(plan, brokers, keys, root, enroll_at, login, spinup_s, heartbeat_s))
            return

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            async with City(plan, brokers, keys, root, factory, spinup_s=spinup_s,
                            heartbeat_s=heartbeat_s, bundles=bundles, mqtt_options=login):
                typer.echo(f"city up: {gateways} gateways, {plan.sirens_total} sirens, broker {brokers}", err=True)
                await stop.wait()

        _loop.run(main())


def lite_enroller(where):
    """Enroll a lite city's identity keys in the hub's trust store (a state dir or the hub's backend) in one
    session, as `dozor gateways enroll` does one by one."""
    from hub.gwtrust import TrustStore
    from hub.repo import Backend

    def enroll(pairs: list[tuple[str, str]]) -> None:
        store = TrustStore.in_backend(where) if isinstance(where, Backend) else TrustStore(where)
        try:
            for gid, public_b64 in pairs:
                store.enroll(gid, public_b64, actor="sim city", reason="simulated city (lite)")
        finally:
            store.close()

    return enroll


async def run_lite(plan, brokers: str, keys: dict[str, str], root: Path, enroll_at, login: dict[str, str],
                   spinup_s: float, heartbeat_s: float) -> None:
    """`dozor sim city --lite`: the plan's gateways as lite gateways in this process until SIGINT/SIGTERM; then
    one JSON line of the city's counters on stdout (commands received, accepted, rejected by reason, acks) and its
    own timings (``LiteCity.timings``: command in -> "sounding" ack PUBACKed, the event loop's lag)."""
    from contract.broker import BrokerAddress
    from simulators.city_lite import LiteCity, LiteSettings

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    settings = LiteSettings(BrokerAddress(urls=tuple(brokers.split(","))), keys, spinup_s=spinup_s,
                            heartbeat_s=heartbeat_s, username=login.get("username"), password=login.get("password"))
    city = LiteCity(plan, settings, root, enroll=lite_enroller(enroll_at) if enroll_at is not None else None)
    async with city:
        typer.echo(f"lite city up: {plan.gateways} gateways, {plan.sirens_total} sirens, broker {brokers}", err=True)
        await stop.wait()
        doc = {"gateways": plan.gateways, "online": city.online(), "sounding": city.sounding(),
               "crashed": city.crashed(), "counters": dict(sorted(city.counters().items())), **city.timings()}
    typer.echo(json.dumps(doc))
