"""What `dozor alert` shows: phase names, the live summary and device table while an alert is followed, the
coverage lines and the confirm preview, and the exit code an alert's outcome maps to. Split from
``dozor/commands/alert.py`` (the commands themselves)."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.live import Live
from rich.table import Table

from dozor.commands._common import EXIT_PARTIAL, console

CONFIRMED = {"sounding", "playing", "done"}
FAILED = {"failed", "rejected"}


def _d(model) -> dict[str, Any]:
    return model.model_dump(mode="json")


def phase_name(alert: dict[str, Any]) -> str:
    """What the sirens are being told now: the alert's signal, ``all-clear``, ``stop`` or ``cancel``."""
    phase = alert.get("phase")
    if phase == "all_clear":
        return "all-clear"
    if phase == "stop":
        return "cancel" if alert.get("status") == "cancelled" else "stop"
    return str(alert.get("signal", "?"))


def _summary_line(alert: dict[str, Any], elapsed: float) -> str:
    s = alert.get("summary", {})
    total = s.get("total", 0)
    ok = s.get("confirmed", 0)
    parts = [f"{phase_name(alert)}: {ok}/{total} confirmed after {elapsed:.1f} s"]
    if s.get("failed"):
        parts.append(f"{s['failed']} failed")
    if s.get("unreachable"):
        parts.append(f"{s['unreachable']} unreachable")
    if s.get("pending"):
        parts.append(f"{s['pending']} pending")
    mode = alert.get("mode", "?").upper()
    return f"[{mode}] {alert.get('id')} " + ", ".join(parts)


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


def show_preview(p: dict[str, Any]) -> None:
    a = p["alert"]
    r = p.get("residents", {})
    by = a.get("requested_by") or {}
    left = (a.get("confirm_by") or 0) - time.time()
    console.print(f"[bold]{a.get('mode', '').upper()} {a.get('signal')}[/] alert {a['id']} requested by "
                  f"{by.get('name', '?')} ({by.get('role', '?')}); {max(0, left):.0f} s left to confirm")
    console.print(f"zones: {', '.join(a.get('zones', []))}; duration {a.get('duration_s')} s")
    for lang in ("uk", "en"):
        text = (a.get("message") or {}).get(lang)
        console.print(f"message ({lang}): {text if text else '(standard text)'}")
    console.print(f"reaches: {p['sirens']} sirens, {p['speakers']} speakers ({p['devices']} devices on "
                  f"{p['gateways']} gateways); residents: "
                  + (f"{r['web_push']} Web Push subscriptions, " if r.get("web_push") is not None else "")
                  + f"{r.get('live_viewers', 0)} open resident pages, channels: "
                  + (", ".join(r.get("channels", [])) or "page and CAP feed only"))
    for what, items in (("takes sirens over from", p.get("affects")), ("[red]refused while held by[/]",
                                                                        p.get("conflicts"))):
        if items:
            console.print(f"{what}: {', '.join(items)}")
