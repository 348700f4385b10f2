"""`dozor air`: latest PM readings per sensor with the indicative US AQI (EPA 2024) and European AQI band."""

from __future__ import annotations

import typer
from rich.table import Table

from dozor.commands._common import HubOpt, JsonOpt, TokenOpt, client, console, emit_json, fail

COLOURS = {"good": "green", "moderate": "yellow", "fair": "green", "unhealthy_sensitive": "dark_orange",
           "poor": "red", "unhealthy": "red", "very_unhealthy": "magenta", "very_poor": "magenta",
           "hazardous": "dark_red", "extremely_poor": "dark_red"}


def register(root: typer.Typer) -> None:
    root.command("air")(air)


def _index(row: dict, table: str) -> str:
    idx = (row.get("aqi") or {}).get(table)
    if not idx:
        return ""
    colour = COLOURS.get(idx["category"], "white")
    value = f"{'>' if idx.get('beyond') else ''}{idx['value']}"
    return f"[{colour}]{value} {idx['category'].replace('_', ' ')}[/]"


def _num(v) -> str:
    return "" if v is None else f"{v:.1f}"


def air(zone: str | None = typer.Option(None, "--zone", "-z", help="only sensors in this zone"),
        hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Air quality now: PM2.5 and PM10 per sensor, US AQI (EPA 2024) with category, EAQI band (EEA 2024),
    the high-humidity flag and the age of the reading. Indices from low-cost sensors are indicative."""
    from dozor.client import HubClientError

    try:
        with client(hub, token) as c:
            out = c.air(zone=zone).model_dump(mode="json")
    except HubClientError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(out)
        return
    rows = out["rows"]
    t = Table(title=f"air{' in ' + zone if zone else ''} ({len(rows)} sensors; indicative indices)")
    for col in ("zone", "gateway", "device", "PM2.5", "PM10", "US AQI (EPA 2024)", "EAQI", "RH", "age"):
        t.add_column(col, justify="right" if col in ("PM2.5", "PM10", "age") else "left")
    for r in rows:
        t.add_row(r.get("zone") or "", r["gateway"], r["device"], _num(r.get("pm2_5")), _num(r.get("pm10")),
                  _index(r, "epa_2024"), _index(r, "eaqi_2024"), "[yellow]high[/]" if r.get("high_humidity") else "",
                  f"{r['age_s']:.0f} s")
    console.print(t)
    if not rows:
        console.print("no PM readings yet" + (f" in zone {zone}" if zone else ""))
