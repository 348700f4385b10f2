"""`dozor alert ...`: the operator's commands. Thin: every action is one hub API call."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.table import Table

from dozor.commands._common import (
    EXIT_ERROR,
    EXIT_USAGE,
    EXIT_WAITING,
    HubOpt,
    JsonOpt,
    TokenOpt,
    client,
    console,
    emit_json,
    err_console,
    fail,
)
from dozor.commands.alert_view import (
    _d,
    _exit_for,
    device_table,
    follow,
    print_coverage,
    show_preview,
)

app = typer.Typer(no_args_is_help=True, help="Start, follow and end alerts.")

SIGNALS = ["air-raid", "all-clear", "chemical", "radiation", "test", "silent-test"]
START_SIGNALS = [s for s in SIGNALS if s != "all-clear"]  # the all-clear is an update, never a new alert


def _alert_id(value: str | None) -> str | None:
    """An alert id as typed: an empty one (`ID=$(dozor alert start ...)` after a failed start) is a usage error."""
    if value is not None and not value.strip():
        raise typer.BadParameter("empty alert id (did the `dozor alert start` that set it fail?); "
                                 "`dozor alert list` shows the ids")
    return value


AlertId = typer.Argument(..., metavar="ALERT_ID", callback=_alert_id, help="the alert's id")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="alert")


def _waits(wait: float | None, no_wait: bool, default: float, as_json: bool) -> float:
    """Seconds to follow progress; contradictory or negative values are a usage error (exit 2)."""
    if wait is not None and no_wait:
        fail("--wait and --no-wait contradict each other: give one of them", as_json=as_json, code=EXIT_USAGE)
    if wait is not None and (wait < 0 or wait != wait):
        fail(f"--wait must be 0 or more seconds, not {wait:g}", as_json=as_json, code=EXIT_USAGE)
    return 0.0 if no_wait else (default if wait is None else wait)


def announce_pending(alert: dict[str, Any], as_json: bool) -> None:
    """A request that waits for a second person: its id alone on stdout (for scripts), the rest on stderr."""
    if as_json:
        emit_json(alert)
    else:
        print(alert["id"])
        by = time.strftime("%H:%M:%S", time.localtime(alert.get("confirm_by") or 0))
        err_console.print(f"[bold yellow]waiting for a second operator:[/] {alert.get('mode', '').upper()} "
                          f"{alert.get('signal')} in {', '.join(alert.get('zones', []))} is not sent yet. A supervisor "
                          f"other than you confirms it with `dozor alert confirm {alert['id']}` before {by}; "
                          "otherwise it expires unsent.")
        if alert.get("affects"):
            err_console.print(f"confirming it would take sirens over from: {', '.join(alert['affects'])}")
    raise typer.Exit(EXIT_WAITING)


@app.command()
def start(
    zone: list[str] = typer.Option(..., "--zone", "-z", help="zone id (repeat for several zones)"),
    signal: str = typer.Option(..., "--signal", "-s", help="one of: " + ", ".join(START_SIGNALS)),
    exercise: bool = typer.Option(False, "--exercise", help="mark as an EXERCISE (never shown as real)"),
    actual: bool = typer.Option(False, "--actual", help="a REAL alert (may need a second person to confirm)"),
    duration: int = typer.Option(180, "--duration", min=1, max=3600, help="seconds the sirens sound at most"),
    message_uk: str | None = typer.Option(None, "--message-uk", help="text residents receive (Ukrainian)"),
    message_en: str | None = typer.Option(None, "--message-en", help="text residents receive (English)"),
    wait: float | None = typer.Option(None, "--wait", help="seconds to follow progress before printing coverage "
                                      "[default: 20]"),
    no_wait: bool = typer.Option(False, "--no-wait", help="print the alert id and return at once"),
    break_glass: bool = typer.Option(False, "--break-glass", help="supervisors only: send alone, past the "
                                     "two-person rule (needs --reason; loudly audited)"),
    reason: str | None = typer.Option(None, "--reason", help="why (required with --break-glass)"),
    hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt,
) -> None:
    """Sound the sirens of ZONEs and alert their residents. --exercise or --actual must be given.

    Exit 0 = full coverage, 3 = partial, 4 = waiting for a second operator (`dozor alert confirm ID`)."""
    if exercise == actual:
        fail("say --exercise or --actual (exactly one): an alert is never implicitly real", as_json=as_json,
             code=EXIT_USAGE)
    if signal not in START_SIGNALS:
        hint = (" (the all-clear is an update of the alert it ends: `dozor alert all-clear ALERT_ID`)"
                if signal == "all-clear" else "")
        fail(f"unknown signal {signal!r}; choose one of: {', '.join(START_SIGNALS)}{hint}", as_json=as_json,
             code=EXIT_USAGE)
    if break_glass and not reason:
        fail("--break-glass needs --reason (it is recorded in the audit log)", as_json=as_json, code=EXIT_USAGE)
    follow_s = _waits(wait, no_wait, 20.0, as_json)
    from dozor.client import HubClientError as HubError

    c = client(hub, token)
    message = {k: v for k, v in (("uk", message_uk), ("en", message_en)) if v}
    try:
        alert = _d(c.create_alert(zones=zone, signal=signal, mode="actual" if actual else "exercise",
                                  duration_s=duration, message=message or None, break_glass=break_glass,
                                  reason=reason))
        if alert.get("status") == "pending_confirmation":
            announce_pending(alert, as_json)
    except HubError as exc:
        fail(str(exc), as_json=as_json)
    _finish(c, alert, no_wait=no_wait, wait_s=follow_s, as_json=as_json)


def _finish(c, alert: dict[str, Any], *, no_wait: bool, wait_s: float, as_json: bool) -> None:
    """After the hub took a start or a confirm: follow it to its coverage and exit by it (0 full, 3 partial,
    4 waiting for a second operator), or return at once with --no-wait."""
    from dozor.client import HubClientError

    if no_wait:
        _print_started(alert, as_json)
        return
    try:
        alert = follow(c, alert, wait_s=wait_s, as_json=as_json)
    except HubClientError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(alert)
    else:
        print_coverage(alert)
    _exit_for(alert)


def _print_started(alert: dict[str, Any], as_json: bool) -> None:
    """--no-wait: the id alone on stdout (for scripts), what happened on stderr."""
    if as_json:
        emit_json(alert)
        return
    print(alert["id"])
    err_console.print(f"{alert.get('mode', '').upper()} {alert.get('signal')} {alert['id']} is {alert.get('status')}; "
                      f"follow it with `dozor alert status {alert['id']}`")


@app.command()
def confirm(alert_id: str = AlertId, yes: bool = typer.Option(False, "--yes", "-y", help="confirm without asking (scripts)"),
            wait: float | None = typer.Option(None, "--wait", help="seconds to follow progress [default: 20]"),
            no_wait: bool = typer.Option(False, "--no-wait", help="return right after confirming"),
            hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Be the second person for a waiting alert (supervisors; not your own request). Shows the whole alert first.

    Exit 0 = full coverage, 3 = partial, 1 = refused (expired, your own request, not a supervisor)."""
    follow_s = _waits(wait, no_wait, 20.0, as_json)
    from dozor.client import HubClientError as HubError

    c = client(hub, token)
    try:
        preview = _d(c.preview(alert_id))
        if not yes:  # never ask about what can no longer be sent (with --yes the hub itself refuses)
            waiting = preview["alert"]
            if waiting.get("status") != "pending_confirmation":
                fail(f"alert {alert_id} is {waiting.get('status')}: nothing to confirm", as_json=as_json)
            if (waiting.get("confirm_by") or 0) <= time.time():
                fail(f"alert {alert_id}: the confirmation window ran out; request it again", as_json=as_json)
            if as_json:
                fail("--json needs --yes (there is no prompt in JSON mode)", as_json=True, code=EXIT_USAGE)
            show_preview(preview)
            if not typer.confirm("Send this alert now?", default=False):
                err_console.print("not confirmed: nothing was sent")
                raise typer.Exit(EXIT_ERROR)
        alert = _d(c.confirm(alert_id))
    except HubError as exc:
        fail(str(exc), as_json=as_json)
    _finish(c, alert, no_wait=no_wait, wait_s=follow_s, as_json=as_json)


@app.command()
def pending(hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Alert requests waiting for a second operator (oldest first), with the time left to confirm."""
    from dozor.client import HubClientError as HubError

    try:
        alerts = [_d(a) for a in client(hub, token).pending()]
    except HubError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json(alerts)
        return
    if not alerts:
        console.print("nothing waits for confirmation")
        return
    t = Table(title="waiting for a second operator")
    t.add_column("id", no_wrap=True, min_width=max(len(a["id"]) for a in alerts))
    for col in ("signal", "mode", "zones", "requested by", "left"):
        t.add_column(col, overflow="fold")
    for a in alerts:
        by = a.get("requested_by") or {}
        t.add_row(a["id"], a.get("signal", ""), a.get("mode", ""), ",".join(a.get("zones", [])),
                  f"{by.get('name', '?')} ({by.get('role', '?')})",
                  f"{max(0, (a.get('confirm_by') or 0) - time.time()):.0f} s")
    console.print(t)


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
def stop(alert_id: str = AlertId, wait: float | None = typer.Option(None, "--wait", help="seconds to follow [default: 10]"),
         no_wait: bool = typer.Option(False, "--no-wait", help="return right after the hub accepted it"),
         hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Stop the sirens of an alert now (signed stop commands)."""
    _action("stop", alert_id, hub, token, as_json, _waits(wait, no_wait, 10.0, as_json))


@app.command("all-clear")
def all_clear(alert_id: str = AlertId, wait: float | None = typer.Option(None, "--wait", help="seconds to follow "
                                                               "[default: 20]"),
              no_wait: bool = typer.Option(False, "--no-wait", help="return right after the hub accepted it"),
              hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Sound the all-clear: an update of the same alert."""
    _action("all_clear", alert_id, hub, token, as_json, _waits(wait, no_wait, 20.0, as_json))


@app.command()
def cancel(alert_id: str = AlertId, hub: str | None = HubOpt, token: str | None = TokenOpt,
           as_json: bool = JsonOpt) -> None:
    """Retract an alert that was wrong (CAP Cancel): stop and mark cancelled. A request nobody has confirmed
    yet is withdrawn (nothing was sent). Refused after an all-clear or a completed stop: those ended properly."""
    _action("cancel", alert_id, hub, token, as_json, 0)


@app.command()
def status(alert_id: str | None = typer.Argument(None, metavar="[ALERT_ID]", callback=_alert_id), hub: str | None = HubOpt, token: str | None = TokenOpt,
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
    t.add_column("id", no_wrap=True, min_width=max((len(a["id"]) for a in alerts), default=2))  # never cut
    for col in ("signal", "mode", "status", "zones", "confirmed", "created"):
        t.add_column(col, overflow="fold")
    for a in alerts:
        s = a.get("summary", {})
        t.add_row(a["id"], a.get("signal", ""), a.get("mode", ""), a.get("status", ""), ",".join(a.get("zones", [])),
                  f"{s.get('confirmed', 0)}/{s.get('total', 0)}",
                  time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a.get("created_at", 0))))
    console.print(t)
