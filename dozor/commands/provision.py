"""`dozor provision init|tenant|gateway|revoke|list`: a city's broker, hub and gateway identities, and more
cities (tenants) on the same broker (dozor/provision/).

Exit codes: 0 done, 1 a provisioning error (message on stderr, or {"error": ...} with --json).
"""

from __future__ import annotations

from pathlib import Path

import typer

from dozor.commands._common import JsonOpt, console, emit_json, err_console, fail

DirArg = typer.Argument(Path("."), envvar="DOZOR_CITY", show_default=False,
                        help="the city's provisioning folder (see docs/operations.md for its layout) "
                             "[default: $DOZOR_CITY, else the current folder]")
TenantOpt = typer.Option("", "--tenant", help="a tenant added with `dozor provision tenant` "
                         "[default: the folder's own city, the default tenant]")


def _run(fn, as_json: bool):
    from contract.errors import DozorError

    try:
        return fn()
    except (DozorError, ValueError, OSError) as exc:
        fail(str(exc), as_json=as_json)


def register(app: typer.Typer) -> None:
    prov = typer.Typer(no_args_is_help=True, help="Provision a city: CA, broker, hub and gateway identities")
    app.add_typer(prov, name="provision")

    @prov.command("init")
    def init(root: Path = typer.Argument(..., help="the city's provisioning folder (created if missing)"),
             broker_host: str = typer.Option(..., "--broker-host", help="the name or IP gateways use to reach the broker"),
             port: int = typer.Option(8883, "--port", min=1, max=65535, help="the broker's TLS port"),
             bind: str = typer.Option("0.0.0.0", "--bind", help="the address the broker listens on"),
             hub_state_dir: Path = typer.Option(Path("/var/lib/dozor-hub"), "--hub-state-dir",
                                                help="the hub's state dir (its signing key is created there now)"),
             api_host: str = typer.Option(None, "--api-host", help="where the hub's API listens "
                                          "(0.0.0.0 inside compose, behind the TLS proxy) "
                                          "[default: as in an earlier run, else 127.0.0.1]"),
             api_port: int = typer.Option(None, "--api-port", min=1, max=65535,
                                          help="[default: as in an earlier run, else 8080]"),
             store_url: str = typer.Option("http://influxdb:8086", "--store-url",
                                           help='the InfluxDB 2 URL for the hub ("" for none)'),
             broker_user: str = typer.Option(None, "--broker-user",
                                             help="user (or uid) the broker runs as; owns its key "
                                                  "[default: mosquitto when run as root]"),
             hub_uid: int = typer.Option(None, "--hub-uid", help="uid that runs the hub and owns its keys and "
                                         "state [default: 10001, the image's dozor user, when run as root]"),
             as_json: bool = JsonOpt) -> None:
        """Create the city CA, the broker's certificate and config, the hub's identities and config."""
        from dozor.provision import city

        out = _run(lambda: city.init(root, broker_host=broker_host, port=port, bind=bind,
                                     hub_state_dir=hub_state_dir, api_host=api_host, api_port=api_port,
                                     store_url=store_url, broker_user=broker_user, hub_uid=hub_uid), as_json)
        if as_json:
            emit_json(out)
            return
        console.print(f"city provisioned in {out['dir']}: broker {out['broker']} (listening on {out['bind']}), "
                      f"hub key {', '.join(out['hub_keys'])}")
        console.print(f"  broker: mosquitto -c {out['dir']}/broker/mosquitto.conf")
        console.print(f"  hub:    dozor hub run --config {out['dir']}/hub/hub.toml")
        if out.get("note"):
            err_console.print(f"note: {out['note']}")

    @prov.command("gateway")
    def gateway(gw: str = typer.Argument(..., help="gateway id (1-64 of A-Z a-z 0-9 _ . -)"),
                root: Path = DirArg,
                zone: str = typer.Option(..., "--zone", help="the zone this gateway serves"),
                state_dir: str = typer.Option("/var/lib/dozor-gateway", "--state-dir",
                                              help="the gateway's state dir on the cabinet"),
                broker_host: str = typer.Option(None, "--broker-host",
                                                help="override the broker address this cabinet uses"),
                tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
        """Issue a gateway's certificate, register it with the hub and write its bundle (DIR/gateways/GW/)."""
        from dozor.provision import city

        out = _run(lambda: city.add_gateway(root, gw, zone=zone, state_dir=state_dir, broker_host=broker_host,
                                            tenant=tenant), as_json)
        if as_json:
            emit_json(out)
            return
        console.print(f"gateway {gw} (zone {zone}): bundle in {out['bundle']}; copy it to the cabinet "
                      f"(/etc/dozor/) or run deploy/install-gateway.sh there")

    @prov.command("revoke")
    def revoke(gw: str = typer.Argument(..., help="gateway id"), root: Path = DirArg,
               tenant: str = TenantOpt, as_json: bool = JsonOpt) -> None:
        """Revoke a gateway at the broker (CRL) and at the hub (removed from its zones)."""
        from dozor.provision import city

        out = _run(lambda: city.revoke(root, gw, tenant), as_json)
        if as_json:
            emit_json(out)
            return
        console.print(f"gateway {gw} revoked (certificate {out['serial']}); next: {out['next']}")

    @prov.command("tenant")
    def tenant_cmd(name: str = typer.Argument(..., help="the tenant (city): 1-32 of a-z 0-9 - (not gw, zone, hub)"),
                   root: Path = DirArg,
                   hub_state_dir: Path = typer.Option(..., "--hub-state-dir",
                                                      help="the tenant hub's own state dir (its signing key, "
                                                           "users and audit chain are created there now)"),
                   api_host: str = typer.Option("127.0.0.1", "--api-host", help="where the tenant hub's API listens"),
                   api_port: int = typer.Option(8080, "--api-port", min=1, max=65535),
                   store_url: str = typer.Option("http://influxdb:8086", "--store-url",
                                                 help='the InfluxDB 2 URL for the hub ("" for none)'),
                   hub_uid: int = typer.Option(None, "--hub-uid", help="uid that runs the tenant's hub "
                                               "[default: the folder's hub uid]"),
                   as_json: bool = JsonOpt) -> None:
        """Add a city (tenant) on this folder's broker: its own hub (config, identities, keys, first admin),
        topics under dozor/v1/NAME/ and an ACL that keeps it and the other cities apart."""
        from dozor.provision import tenants

        out = _run(lambda: tenants.add_tenant(root, name, hub_state_dir=hub_state_dir, api_host=api_host,
                                              api_port=api_port, store_url=store_url, hub_uid=hub_uid), as_json)
        if as_json:
            emit_json(out)
            return
        console.print(f"tenant {name}: topics {out['topics']}, hub: dozor hub run --config {out['hub_config']}")
        console.print(f"  next: {out['next']}")

    @prov.command("list")
    def listing(root: Path = DirArg, as_json: bool = JsonOpt) -> None:
        """Everything provisioned in DIR: the broker, the hub's keys, each gateway and whether it is revoked."""
        from dozor.provision import city

        out = _run(lambda: city.listing(root), as_json)
        if as_json:
            emit_json(out)
            return
        console.print(f"{out['dir']}: broker {out['broker']}, hub keys {', '.join(out['hub_keys'])}")
        for g in out["gateways"]:
            console.print(f"  {g['gateway']:<24} zone {g['zone']:<16} "
                          f"{'REVOKED' if g['revoked'] else 'active '}  {g['bundle']}")
