"""`dozor cap ...`: CAP 1.2 documents from the hub (export) and external CAP alerts into it (import)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from dozor.commands._common import HubOpt, JsonOpt, TokenOpt, console, emit_json, fail
from dozor.commands.residents import hub_request

app = typer.Typer(no_args_is_help=True, help="CAP 1.2: export alerts, import external advisories.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="cap")


@app.command("export")
def export(alert_id: str = typer.Argument(..., metavar="ID", help="alert id (latest message) or id.vN"),
           out: Path | None = typer.Option(None, "--out", "-o", help="write to this file instead of stdout"),
           hub: str | None = HubOpt, token: str | None = TokenOpt) -> None:
    """Print the CAP 1.2 XML of an alert message (validated against the OASIS schema by the hub)."""
    if not alert_id or "/" in alert_id or len(alert_id) > 128:
        fail(f"not an alert id: {alert_id[:64]!r}")
    r = hub_request(hub, token, "GET", f"/cap/{alert_id}.xml")
    if out is None:
        sys.stdout.write(r.text)
    else:
        try:
            out.write_bytes(r.content)
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror}")
        console.print(f"wrote {out} ({len(r.content)} bytes)")


@app.command("import")
def import_(path: Path = typer.Argument(..., help="a CAP 1.2 XML file"), hub: str | None = HubOpt,
            token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Hand an external CAP alert to the hub as an advisory an operator can promote."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", as_json=as_json)
    adv = hub_request(hub, token, "POST", "/api/v1/cap/import", content=data, as_json=as_json).json()
    if as_json:
        emit_json(adv)
        return
    console.print(f"advisory {adv['id']}: {adv['status']} {adv['msg_type']} from {adv['sender']} — "
                  f"zones: {', '.join(adv['suggested_zones']) or 'none matched'}")


@app.command("advisories")
def advisories(hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Imported CAP advisories waiting for an operator, newest first."""
    items = hub_request(hub, token, "GET", "/api/v1/cap/advisories", as_json=as_json).json()
    if as_json:
        emit_json(items)
        return
    if not items:
        console.print("no advisories")
    for a in items:
        head = a["headline"].get("uk") or a["headline"].get("en") or a["event"]
        mark = " (promoted)" if a["promoted"] else ""
        console.print(f"{a['id']}  {a['status']:<8} {a['sender']}  {head}  zones: "
                      f"{', '.join(a['suggested_zones']) or '-'}{mark}")


@app.command("promote")
def promote(advisory_id: str = typer.Argument(..., metavar="ADVISORY"), hub: str | None = HubOpt,
            token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Promote an imported advisory: the hub's alert engine decides and starts the alert."""
    res = hub_request(hub, token, "POST", f"/api/v1/cap/advisories/{advisory_id}/promote", as_json=as_json).json()
    if as_json:
        emit_json(res)
        return
    if res.get("started"):
        console.print(f"advisory {advisory_id} promoted: alert {res['alert'].get('id')}")
    else:
        console.print(f"advisory {advisory_id} marked promoted; no alert engine attached. Draft:")
        emit_json(res["draft"])
