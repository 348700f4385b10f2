"""`dozor residents ...`: resident-alert channels (health and delivery counts), over the hub's HTTP API."""

from __future__ import annotations

from typing import Any

import httpx
import typer
from rich.table import Table

from dozor.commands._common import (
    DEFAULT_HUB,
    HubOpt,
    JsonOpt,
    TokenOpt,
    console,
    emit_json,
    fail,
    resolve_token,
)

app = typer.Typer(no_args_is_help=True, help="Linked resident alerts: channels, subscriptions.")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="residents")


def hub_request(hub: str | None, token: str | None, method: str, path: str, *, as_json: bool = False,
                content: bytes | None = None, timeout: float = 10.0) -> httpx.Response:
    """One call to the hub; every failure becomes a readable error and a non-zero exit."""
    base = (hub or DEFAULT_HUB).rstrip("/")
    tok = resolve_token(token)
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=timeout) as c:
            r = c.request(method, path, content=content)
    except httpx.ConnectError:
        fail(f"hub not reachable at {base}", as_json=as_json)
    except httpx.TimeoutException:
        fail(f"hub at {base} did not answer within {timeout:g} s", as_json=as_json)
    except httpx.HTTPError as exc:
        fail(f"talking to {base}: {type(exc).__name__}: {exc}", as_json=as_json)
    if r.status_code in (401, 403):
        fail(f"hub refused the request ({r.status_code}): set --token or DOZOR_TOKEN", as_json=as_json)
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail") or r.json().get("error")
        except (ValueError, AttributeError):
            detail = r.text[:200]
        fail(f"hub answered {r.status_code}: {detail}", as_json=as_json)
    return r


def channels_table(doc: dict[str, Any]) -> Table:
    t = Table(title="resident alert channels")
    for col in ("channel", "health", "delivered", "failed", "timeouts", "retries", "pruned",
                "exercise skipped", "last error"):
        t.add_column(col)
    colour = {"ok": "green", "degraded": "yellow", "failing": "red"}
    for ch in doc.get("channels", []):
        h = str(ch.get("health", "?"))
        t.add_row(str(ch.get("name")), f"[{colour.get(h, 'white')}]{h}[/]", str(ch.get("delivered", 0)),
                  str(ch.get("failed", 0)), str(ch.get("timeouts", 0)), str(ch.get("retries", 0)),
                  str(ch.get("pruned", 0)), str(ch.get("skipped_exercise", 0)), str(ch.get("last_error") or ""))
    return t


@app.command("channels")
def channels(hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Channel health and delivery counts (Web Push, ntfy, Telegram, webhook)."""
    doc = hub_request(hub, token, "GET", "/api/v1/residents/channels", as_json=as_json).json()
    if as_json:
        emit_json(doc)
        return
    console.print(channels_table(doc))
    subs = doc.get("subscriptions")
    console.print(f"push subscriptions: {subs if subs is not None else 'push disabled'}; "
                  f"live page listeners: {doc.get('sse_listeners', 0)}")
    if any(ch.get("health") == "failing" for ch in doc.get("channels", [])):
        raise typer.Exit(3)
