"""`dozor telemetry tail` and `dozor telemetry latest`: readings as the hub receives them."""

from __future__ import annotations

import json
import sys
import time

import typer
from rich.table import Table

from dozor.commands._common import HubOpt, JsonOpt, TokenOpt, client, console, emit_json, fail

WAIT_S = 10.0


def register(root: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="Telemetry as the hub receives it.")
    root.add_typer(group, name="telemetry")
    group.command("tail")(tail)
    group.command("latest")(latest)


def _line(r: dict) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(r["ts"])) + f".{int(r['ts'] * 1000) % 1000:03d}"
    metrics = " ".join(f"{k}={v:g}" for k, v in r["metrics"].items())
    flags = f" [{','.join(r['flags'])}]" if r.get("flags") else ""
    return f"{when} {r['gateway']}/{r['device']} {r['kind']} {metrics}{flags}"


def tail(gateway: str | None = typer.Option(None, "--gateway", "-g", help="only this gateway"),
         count: int | None = typer.Option(None, "--count", "-n", min=1, help="stop after N readings"),
         backlog: int = typer.Option(10, "--backlog", min=0, max=10_000,
                                     help="start with the last N readings the hub holds (like tail -n)"),
         hub: str | None = HubOpt, token: str | None = TokenOpt,
         as_json: bool = typer.Option(False, "--json", help="one JSON object per reading and line")) -> None:
    """Follow readings until Ctrl-C (or --count N)."""
    from dozor.client import HubClientError

    shown = 0
    after: int | None = None
    try:
        with client(hub, token) as c:
            while count is None or shown < count:
                page = c.telemetry_tail(gateway=gateway, after=after, last=backlog if after is None else 0,
                                        wait_s=WAIT_S, limit=1000 if count is None else min(1000, count - shown))
                if page.missed and not as_json:
                    console.print(f"[yellow]... {page.missed} readings skipped (the hub's buffer moved on; "
                                  "they are in the store)[/]")
                for r in page.readings:
                    row = r.model_dump(mode="json")
                    if as_json:
                        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
                    else:
                        console.print(_line(row), markup=False)
                    shown += 1
                sys.stdout.flush()
                after = page.cursor
    except HubClientError as exc:
        fail(str(exc), as_json=as_json)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def latest(gateway: str | None = typer.Option(None, "--gateway", "-g", help="only this gateway"),
           zone: str | None = typer.Option(None, "--zone", "-z", help="only this zone"),
           hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """The newest value of every metric per device."""
    from dozor.client import HubClientError

    try:
        with client(hub, token) as c:
            rows = [d.model_dump(mode="json") for d in c.telemetry_latest(gateway=gateway, zone=zone)]
    except HubClientError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(rows)
        return
    t = Table(title=f"latest readings ({len(rows)} devices)")
    for col in ("zone", "gateway", "device", "kind", "metric", "value", "age", "flags"):
        t.add_column(col)
    for d in rows:
        for name, m in d["metrics"].items():
            t.add_row(d.get("zone") or "", d["gateway"], d["device"], d["kind"], name, f"{m['value']:g}",
                      f"{m['age_s']:.0f} s", ",".join(m.get("flags", [])))
    console.print(t)
