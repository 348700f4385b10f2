"""`dozor alert ...`: the operator's commands. Thin: every action is one hub API call."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.live import Live
from rich.table import Table

from dozor.commands._common import (
    EXIT_PARTIAL,
    HubOpt,
    JsonOpt,
    TokenOpt,
    client,
    console,
    emit_json,
    fail,
)

app = typer.Typer(no_args_is_help=True, help="Start, follow and end alerts.")

SIGNALS = ["air-raid", "all-clear", "chemical", "radiation", "test", "silent-test"]
CONFIRMED = {"sounding", "playing", "done"}
FAILED = {"failed", "rejected"}


def _d(model) -> dict[str, Any]:
    return model.model_dump(mode="json")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="alert")


def _summary_line(alert: dict[str, Any], elapsed: float) -> str:
    s = alert.get("summary", {})
    total = s.get("total", 0)
    ok = s.get("confirmed", 0)
    parts = [f"{ok}/{total} confirmed after {elapsed:.1f} s"]
    if s.get("failed"):
        parts.append(f"{s['failed']} failed")
    if s.get("unreachable"):
        parts.append(f"{s['unreachable']} unreachable")
    if s.get("pending"):
        parts.append(f"{s['pending']} pending")
    mode = alert.get("mode", "?").upper()
    return f"[{mode}] {alert.get('id')} {alert.get('signal')}: " + ", ".join(parts)


def _finished(alert: dict[str, Any]) -> bool:
    """The hub stops tracking once every device is confirmed, refused, or out of retries."""
    return not alert.get("tracking", True)


def device_table(alert: dict[str, Any], only_problems: bool = False) -> Table:
    t = Table(title=f"alert {alert.get('id')} — {alert.get('signal')} ({alert.get('mode')}) — {alert.get('status')}")
    for col in ("gateway", "device", "kind", "state", "reason", "confirm ms", "attempts"):
        t.add_column(col)
    for d in alert.get("devices", []):
        if only_problems and d.get("state") in CONFIRMED:
            continue
        state = d.get("state", "?")
        style = "green" if state in CONFIRMED else "red" if state in FAILED | {"unreachable"} else "yellow"
        ms = d.get("confirm_ms")
        t.add_row(d.get("gateway", ""), d.get("device", ""), d.get("kind", ""), f"[{style}]{state}[/]",
                  d.get("reason") or "", "" if ms is None else f"{ms:.0f}", str(d.get("attempts", "")))
    return t


def follow(hub_client, alert: dict[str, Any], *, wait_s: float, as_json: bool) -> dict[str, Any]:
    """Poll the alert until every device is confirmed, failed or unreachable (or wait_s passes)."""
    t0 = time.monotonic()
    deadline = t0 + wait_s
    alert = _follow(hub_client, alert, t0, deadline, as_json)
    return _d(hub_client.alert(alert["id"]))  # once more with every device, for the coverage report


def _follow(hub_client, alert: dict[str, Any], t0: float, deadline: float, as_json: bool) -> dict[str, Any]:
    if as_json or not console.is_terminal:
        last = ""
        while not _finished(alert) and time.monotonic() < deadline:
            time.sleep(0.1)
            alert = _d(hub_client.alert(alert["id"], devices=False))
            line = _summary_line(alert, time.monotonic() - t0)
            if not as_json and line.split(" after ")[0] != last:  # one line per change, for logs and pipes
                console.print(line)
                last = line.split(" after ")[0]
        return alert
    with Live(_summary_line(alert, 0.0), console=console, refresh_per_second=10, transient=False) as live:
        while not _finished(alert) and time.monotonic() < deadline:
            time.sleep(0.1)
            alert = _d(hub_client.alert(alert["id"], devices=False))
            live.update(_summary_line(alert, time.monotonic() - t0))
    return alert




def print_coverage(alert: dict[str, Any]) -> None:
    s = alert.get("summary", {})
    problems = [d for d in alert.get("devices", []) if d.get("state") not in CONFIRMED]
    if problems:
        console.print(device_table(alert, only_problems=True))
    first, last = s.get("first_confirm_ms"), s.get("last_confirm_ms")
    console.print(
        f"coverage: [green]{s.get('confirmed', 0)} confirmed[/], [red]{s.get('failed', 0)} failed[/], "
        f"[red]{s.get('unreachable', 0)} unreachable[/], {s.get('pending', 0)} pending of {s.get('total', 0)}"
        + (f"; first confirmation {first:.0f} ms, last {last:.0f} ms" if first is not None and last is not None
           else "")
    )


def _exit_for(alert: dict[str, Any]) -> None:
    s = alert.get("summary", {})
    if s.get("total", 0) and s.get("confirmed", 0) < s.get("total", 0):
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def start(
    zone: list[str] = typer.Option(..., "--zone", "-z", help="zone id (repeat for several zones)"),
    signal: str = typer.Option(..., "--signal", "-s", help="one of: " + ", ".join(SIGNALS)),
    exercise: bool = typer.Option(False, "--exercise", help="mark as an EXERCISE (never shown as real)"),
    duration: int = typer.Option(180, "--duration", min=1, max=3600, help="seconds the sirens sound at most"),
    message_uk: str | None = typer.Option(None, "--message-uk", help="text residents receive (Ukrainian)"),
    message_en: str | None = typer.Option(None, "--message-en", help="text residents receive (English)"),
    wait: float = typer.Option(20.0, "--wait", help="seconds to follow progress before printing coverage"),
    no_wait: bool = typer.Option(False, "--no-wait", help="return right after the hub accepted the alert"),
    hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt,
) -> None:
    """Sound the sirens of ZONEs and alert their residents. Exit 0 = full coverage, 3 = partial."""
    if signal not in SIGNALS:
        fail(f"unknown signal {signal!r}; choose one of: {', '.join(SIGNALS)}", as_json=as_json, code=2)
    from dozor.client import HubClientError as HubError

    c = client(hub, token)
    message = {k: v for k, v in (("uk", message_uk), ("en", message_en)) if v}
    try:
        alert = _d(c.create_alert(zones=zone, signal=signal, mode="exercise" if exercise else "actual",
                              duration_s=duration, message=message or None))
        if not no_wait:
            alert = follow(c, alert, wait_s=wait, as_json=as_json)
    except HubError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(alert)
    else:
        print_coverage(alert)
    if not no_wait:
        _exit_for(alert)


def _action(name: str, alert_id: str, hub, token, as_json: bool, wait: float) -> None:
    from dozor.client import HubClientError as HubError

    c = client(hub, token)
    try:
        alert = _d(getattr(c, name)(alert_id))
        if wait > 0:
            alert = follow(c, alert, wait_s=wait, as_json=as_json)
    except HubError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(alert)
    else:
        print_coverage(alert)


@app.command()
def stop(alert_id: str, wait: float = typer.Option(10.0, "--wait"), hub: str | None = HubOpt,
         token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Stop the sirens of an alert now (signed stop commands)."""
    _action("stop", alert_id, hub, token, as_json, wait)


@app.command("all-clear")
def all_clear(alert_id: str, wait: float = typer.Option(20.0, "--wait"), hub: str | None = HubOpt,
              token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Sound the all-clear: an update of the same alert."""
    _action("all_clear", alert_id, hub, token, as_json, wait)


@app.command()
def cancel(alert_id: str, hub: str | None = HubOpt, token: str | None = TokenOpt,
           as_json: bool = JsonOpt) -> None:
    """Retract an alert that was wrong (CAP Cancel): stop and mark cancelled."""
    _action("cancel", alert_id, hub, token, as_json, 0)


@app.command()
def status(alert_id: str | None = typer.Argument(None), hub: str | None = HubOpt, token: str | None = TokenOpt,
           as_json: bool = JsonOpt) -> None:
    """Per-device state of one alert (default: the newest)."""
    from dozor.client import HubClientError as HubError

    c = client(hub, token)
    try:
        if alert_id is None:
            alerts = c.alerts()
            if not alerts:
                fail("no alerts yet", as_json=as_json)
            alert_id = max(alerts, key=lambda a: a.created_at).id
        alert = _d(c.alert(alert_id))
    except HubError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(alert)
        return
    console.print(device_table(alert))
    print_coverage(alert)


@app.command("list")
def list_(hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """All alerts, newest first."""
    from dozor.client import HubClientError as HubError

    try:
        alerts = sorted((_d(a) for a in client(hub, token).alerts()), key=lambda a: -a['created_at'])
    except HubError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(alerts)
        return
    t = Table(title="alerts")
    for col in ("id", "signal", "mode", "status", "zones", "confirmed", "created"):
        t.add_column(col)
    for a in alerts:
        s = a.get("summary", {})
        t.add_row(a["id"], a.get("signal", ""), a.get("mode", ""), a.get("status", ""), ",".join(a.get("zones", [])),
                  f"{s.get('confirmed', 0)}/{s.get('total', 0)}",
                  time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a.get("created_at", 0))))
    console.print(t)
