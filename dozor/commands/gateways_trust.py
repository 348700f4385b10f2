"""`dozor gateways enroll|reset|history` (hub side, on the hub's state dir) and `dozor gateway identity`.

Exit codes: 0 done; 1 a state error (not enrolled, store unreadable); 2 bad input (config, key, reason).
"""

from __future__ import annotations

from pathlib import Path

import typer

from dozor.commands._common import JsonOpt, console, emit_json, fail

HubConfigOpt = typer.Option(Path("/etc/dozor/hub.toml"), "--config", "-c", envvar="DOZOR_HUB_CONFIG",
                            help="the hub's TOML config (its state_dir holds the gateway trust store)")


def audit(state, action: str, subject: str, details: dict) -> None:
    """Record an operator's local action (the CLI on the hub machine) in the hub's tamper-evident audit chain
    (``state``: the hub's state backend, or a state dir of SQLite files)."""
    from dozor.commands.users import local_actor
    from hub.audit import AuditLog
    from hub.repo import Backend

    log = AuditLog.in_backend(state) if isinstance(state, Backend) else AuditLog.in_state_dir(state)
    try:
        log.append(local_actor(), action, subject, details)
    finally:
        log.close()


def _state_dir(config: Path, as_json: bool):
    """The hub's state backend (``[database]``: SQLite files in its state_dir, or PostgreSQL)."""
    from hub.config import load_config
    from hub.errors import HubError

    try:
        return load_config(config).backend()
    except HubError as exc:
        fail(str(exc), as_json=as_json, code=2)


def attach(group: typer.Typer) -> None:
    @group.command("enroll")
    def enroll(gateway: str = typer.Argument(..., help="gateway id"),
               pubkey: str = typer.Option(..., "--pubkey", help="the gateway's identity public key (base64url, "
                                          "from `dozor gateway identity CONFIG` on the gateway)"),
               config: Path = HubConfigOpt, as_json: bool = JsonOpt) -> None:
        """Register a gateway's identity key: the hub accepts its messages only if they verify against it.
        A different key for a known gateway is a new enrollment (re-provisioned): its session starts afresh."""
        from hub.errors import HubError
        from hub.gwtrust import enroll as do_enroll

        state_dir = _state_dir(config, as_json)
        try:
            enr, changed = do_enroll(state_dir, gateway, pubkey, actor="cli", reason="dozor gateways enroll")
        except ValueError as exc:
            fail(str(exc), as_json=as_json, code=2)
        except HubError as exc:
            fail(str(exc), as_json=as_json, code=2 if "pubkey" in str(exc) else 1)
        if changed:
            audit(state_dir, "gateway.enroll", gateway, {"kid": enr.kid, "epoch": enr.epoch})
        out = {**enr.doc(), "changed": changed}
        if as_json:
            emit_json(out)
            return
        what = "enrolled" if changed else "already enrolled with this key"
        console.print(f"gateway {gateway}: {what} (identity key {enr.kid}, epoch {enr.epoch})")

    @group.command("reset")
    def reset(gateway: str = typer.Argument(..., help="gateway id"),
              reason: str = typer.Option(..., "--reason", help="why (recorded with the reset)"),
              config: Path = HubConfigOpt, as_json: bool = JsonOpt) -> None:
        """Recover a gateway from bad state: forget its session and replay floor, clear its retained birth.
        Its next signed heartbeat or birth brings it back. Recorded with the reason."""
        from hub.errors import ConfigError, HubError
        from hub.gwtrust import TrustStore

        state_dir = _state_dir(config, as_json)
        store = TrustStore.in_backend(state_dir)
        try:
            enr = store.reset(gateway, reason=reason, actor="cli")
        except ConfigError as exc:
            fail(str(exc), as_json=as_json, code=2 if "reason" in str(exc) else 1)
        except HubError as exc:
            fail(str(exc), as_json=as_json)
        finally:
            store.close()
        audit(state_dir, "gateway.reset", gateway, {"reason": reason, "epoch": enr.epoch})
        if as_json:
            emit_json({**enr.doc(), "reset": True, "reason": reason})
            return
        console.print(f"gateway {gateway}: reset (epoch {enr.epoch}); its retained birth is cleared by the hub")

    @group.command("history")
    def history(gateway: str | None = typer.Argument(None, help="only this gateway"),
                config: Path = HubConfigOpt, as_json: bool = JsonOpt) -> None:
        """Enrollments and resets, oldest first, with who and why."""
        from hub.gwtrust import TrustStore

        store = TrustStore.in_backend(_state_dir(config, as_json))
        try:
            rows = store.history(gateway)
        finally:
            store.close()
        if gateway and not rows:
            fail(f"gateway {gateway} was never enrolled on this hub (see `dozor gateways`)", as_json=as_json)
        if as_json:
            emit_json(rows)
            return
        for r in rows:
            console.print(f"{r['seq']:>4} {r['gateway']:<20} {r['action']:<9} by {r['actor']}: "
                          f"{r.get('reason') or ''} (epoch {r.get('epoch')})")
