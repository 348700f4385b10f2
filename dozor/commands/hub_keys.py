"""`dozor hub keys list | stage | activate KID [--force] | retire KID`: the hub signing key lifecycle.

They work on the hub's state dir (``--config``); a running hub notices within a second and signs with the
active key, announcing active and staged keys. ``activate`` reads which kids each online gateway pins from
the hub's registry (what their births reported) and refuses while one does not pin the key.
Exit codes: 0 done; 1 refused (an online gateway would reject the key; unknown or active key); 2 bad config.
"""

from __future__ import annotations

import re
from pathlib import Path

import typer
from typer.core import TyperCommand

from dozor.commands._common import JsonOpt, console, emit_json, fail

KID_RE = re.compile(r"^-[A-Za-z0-9_-]{15}$")


class _KidCommand(TyperCommand):
    """A key id is base64url, so one in 64 begins with "-" and would parse as options (``-c`` inside it would
    even be read as ``--config``). An argument shaped like a key id that is not an option is moved behind
    ``--``, so ``dozor hub keys activate -5wpRiYTUx2k7Ujx --config hub.toml`` works as printed."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if "--" not in args:
            names = {n for p in self.params for n in (*p.opts, *p.secondary_opts)}
            kids = [a for a in args if KID_RE.match(a) and a not in names]
            if kids:
                args = [a for a in args if a not in kids] + ["--", *kids]
        return super().parse_args(ctx, args)


ConfigOpt = typer.Option(..., "--config", "-c", help="hub TOML config")


def _ring(config: Path, as_json: bool):
    from hub.config import load_config
    from hub.errors import HubError
    from hub.keys import KeyRing

    try:
        cfg = load_config(config)
    except HubError as exc:
        fail(str(exc), as_json=as_json, code=2)
    return cfg, KeyRing(cfg.hub.state_dir)


def online_pins(cfg) -> dict[str, tuple[str, ...]]:
    """Online gateway -> kids its last birth said it pins, from the hub's persisted registry."""
    from hub.store import Store

    backend = cfg.backend()
    store = Store(cfg.hub.state_dir / "hub.sqlite") if backend.kind == "sqlite" else Store(backend.open("hub"))
    try:
        return {d["id"]: tuple(d.get("keys", ())) for d in store.load_gateways() if d.get("state") == "online"}
    finally:
        store.close()


def attach(group: typer.Typer) -> None:
    keys = typer.Typer(no_args_is_help=True, help="Hub signing keys: list, stage, activate, retire.")
    group.add_typer(keys, name="keys")

    @keys.command("list")
    def list_(config: Path = ConfigOpt, as_json: bool = JsonOpt) -> None:
        """Every hub key with its status (active, staged, retired) and which online gateways pin it."""
        from hub.errors import HubError

        cfg, ring = _ring(config, as_json)
        try:
            rows = ring.list()
        except HubError as exc:
            fail(str(exc), as_json=as_json, code=2)
        pins = online_pins(cfg)
        for r in rows:
            r["pinned_by_online"] = sorted(g for g, kids in pins.items() if r["kid"] in kids)
            r["online_not_pinning"] = sorted(g for g, kids in pins.items() if r["kid"] not in kids)
        if as_json:
            emit_json(rows)
            return
        for r in rows:
            console.print(f"{r['kid']}  {r['status']:<8} pinned by {len(r['pinned_by_online'])}/{len(pins)} online "
                          f"gateway(s){' (missing: ' + ', '.join(r['online_not_pinning'][:10]) + ')' if r['online_not_pinning'] and r['status'] != 'retired' else ''}")

    @keys.command("stage")
    def stage(config: Path = ConfigOpt, as_json: bool = JsonOpt) -> None:
        """Make a new key (0600), announced but not used: pin it on the gateways (`dozor hub pubkey`)."""
        cfg, ring = _ring(config, as_json)
        out = ring.stage()
        _audit(cfg, "key.stage", out["kid"], {"kid": out["kid"]})
        if as_json:
            emit_json(out)
            return
        console.print(f"staged hub key {out['kid']}: pin it on every gateway (dozor hub pubkey), then "
                      f"dozor hub keys activate {out['kid']}")

    @keys.command("activate", cls=_KidCommand)
    def activate(kid: str = typer.Argument(..., help="key id"), config: Path = ConfigOpt,
                 force: bool = typer.Option(False, "--force", help="activate even if online gateways do not pin it"),
                 as_json: bool = JsonOpt) -> None:
        """Sign commands with KID from now on. Refused while an online gateway does not pin it (unless --force)."""
        from hub.errors import HubError

        cfg, ring = _ring(config, as_json)
        try:
            out = ring.activate(kid, gateways=online_pins(cfg), force=force)
        except HubError as exc:
            fail(str(exc), as_json=as_json)
        _audit(cfg, "key.activate", kid, {"kid": kid, "previous": out.get("previous"), "forced": bool(force),
                                          "not_trusting": list(out.get("not_trusting") or ())})
        if as_json:
            emit_json(out)
            return
        console.print(f"hub key {kid} is active" + (f" (was {out['previous']})" if out.get("previous") else "")
                      + (f"; FORCED: {', '.join(out['not_trusting'])} do not pin it" if out["not_trusting"] else ""))

    @keys.command("retire", cls=_KidCommand)
    def retire(kid: str = typer.Argument(..., help="key id"), config: Path = ConfigOpt, as_json: bool = JsonOpt) -> None:
        """Stop announcing KID (gateways may then unpin it). The active key cannot be retired."""
        from hub.errors import HubError

        cfg, ring = _ring(config, as_json)
        try:
            out = ring.retire(kid)
        except HubError as exc:
            fail(str(exc), as_json=as_json)
        _audit(cfg, "key.retire", kid, {"kid": kid})
        if as_json:
            emit_json(out)
            return
        console.print(f"hub key {kid} is retired")


def _audit(cfg, action: str, kid: str, details: dict) -> None:
    """Key changes are audit records by the local user who ran the command (hub/audit)."""
    from dozor.commands.users import local_actor
    from hub.audit import AuditLog

    log = AuditLog.in_backend(cfg.backend())
    try:
        log.append(local_actor(), action, kid, details)
    finally:
        log.close()
