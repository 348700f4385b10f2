"""`dozor gateways` and `dozor devices`: what the hub knows of the fleet."""

from __future__ import annotations

import typer
from rich.table import Table

from dozor.commands._common import HubOpt, JsonOpt, TokenOpt, client, console, emit_json, fail


def register(root: typer.Typer) -> None:
    group = typer.Typer(help="Gateways: the fleet as the hub sees it (no sub-command), enrollment, recovery.")
    group.callback(invoke_without_command=True)(_gateways_default)
    root.add_typer(group, name="gateways")
    from dozor.commands import gateways_trust

    gateways_trust.attach(group)
    root.command("devices")(devices)


def _gateways_default(ctx: typer.Context, hub: str | None = HubOpt, token: str | None = TokenOpt,
                      as_json: bool = JsonOpt) -> None:
    """Gateways: online state, session, heartbeat age, devices, outbox, whether each trusts the active hub key."""
    if ctx.invoked_subcommand is None:
        gateways(hub, token, as_json)


def _age(v) -> str:
    return "" if v is None else f"{v:.0f} s"


def gateways(hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Gateways: online state, session, heartbeat age, devices, outbox depth and oldest unsent item."""
    from dozor.client import HubClientError as HubError

    try:
        rows = [g.model_dump(mode='json') for g in client(hub, token).gateways()]
    except HubError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(rows)
        return
    online = sum(1 for r in rows if r.get("state") == "online")
    t = Table(title=f"gateways ({online}/{len(rows)} online)")
    for col in ("gateway", "online", "session", "heartbeat", "devices", "outbox", "oldest unsent", "active key",
                "unverified"):
        t.add_column(col)
    for r in rows:
        ob = r.get("outbox") or {}
        state = r.get("state", "?")
        t.add_row(r["id"], f"[green]{state}[/]" if state == "online" else f"[red]{state}[/] {r.get('reason', '')}",
                  str(r.get("session", "")), _age(r.get("last_heartbeat_age_s")), str(len(r.get("devices", []))),
                  str(ob.get("depth", "")), _age(ob.get("oldest_age_s")),
                  "[green]trusted[/]" if r.get("trusts_active_key") else "[red]NOT TRUSTED[/]",
                  str(r.get("unverified", 0)))
    console.print(t)


def devices(zone: str | None = typer.Option(None, "--zone", "-z", help="only devices in this zone"),
            hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Devices with their state and faults."""
    from dozor.client import HubClientError as HubError

    try:
        rows = [d.model_dump(mode='json') for d in client(hub, token).devices(zone=zone)]
    except HubError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(rows)
        return
    t = Table(title=f"devices{' in ' + zone if zone else ''} ({len(rows)})")
    for col in ("gateway", "device", "kind", "state", "faults", "gateway state"):
        t.add_column(col)
    for r in rows:
        faults = ",".join(r.get("faults", []))
        t.add_row(r.get("gateway", ""), r.get("id", r.get("device", "")), r.get("kind", ""), r.get("state", ""),
                  f"[red]{faults}[/]" if faults else "", r.get("gateway_state", ""))
    console.print(t)
