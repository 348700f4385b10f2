"""`dozor audit verify|export|verify-export|log`: the hub's tamper-evident audit chain.

    dozor audit verify --config DIR/hub.toml [--broker URL]   recompute the chain, check every signed head
    dozor audit export --config DIR/hub.toml --since 7d [--out FILE]   JSON Lines, verifiable offline
    dozor audit verify-export FILE --public-key KEY           offline: the export and the hub's public key only
    dozor audit log [--alert ID] [--actor NAME]               readable in a terminal (the hub API, or --config)
    dozor audit prune --config DIR/hub.toml [--days N]        archive and drop records older than the retention

Exit codes: 0 intact; 1 the chain or export is broken (the first bad record is named), the hub refused, or the
`--broker` could not be reached or holds no signed head; 2 bad config or arguments (a malformed `--broker` URL).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from dozor.commands._common import (
    HubOpt,
    JsonOpt,
    TokenOpt,
    client,
    console,
    emit_json,
    fail,
    state_dir_error,
)

ConfigOpt = typer.Option(..., "--config", "-c", help="the hub's TOML config (its state dir holds the chain)")


def _state(config: Path, as_json: bool):
    from hub.audit import AuditLog
    from hub.config import load_config
    from hub.errors import HubError
    from hub.keys import load_or_create

    try:
        cfg = load_config(config)
        if not cfg.database.is_postgres and not (cfg.hub.state_dir / "audit.sqlite").exists():
            fail(f"no audit chain in {cfg.hub.state_dir} (has this hub ever run?)", as_json=as_json, code=2)
        return cfg, AuditLog.in_backend(cfg.backend()), load_or_create(cfg.hub.state_dir,
                                                                               cfg.hub.extra_verify_keys)
    except HubError as exc:
        fail(str(exc), as_json=as_json, code=2)
    except OSError as exc:
        fail(state_dir_error(exc), as_json=as_json, code=2)


def retained_head(broker: str, timeout_s: float = 5.0, tenant: str = "") -> dict | None:
    """The retained signed head on dozor/v1[/<tenant>]/hub/audit/head, or None if the broker holds none."""
    import threading

    import paho.mqtt.client as mqtt

    from contract import topics
    from contract.broker import BrokerAddress

    addr = BrokerAddress(url=broker)
    got: list[bytes] = []
    done = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if addr.url.startswith("mqtts://"):
        c.tls_set()

    def on_message(_c, _u, msg):
        got.append(msg.payload)
        done.set()

    c.on_message = on_message
    c.on_connect = lambda cl, _u, _f, _rc, _p=None: cl.subscribe(topics.Topics(tenant).hub_audit_head, qos=1)
    c.connect(addr.host, addr.port)
    c.loop_start()
    try:
        done.wait(timeout_s)
    finally:
        c.loop_stop()
        c.disconnect()
    return json.loads(got[0]) if got and got[0] else None


def _report(verdict, as_json: bool, what: str) -> None:
    if as_json:
        emit_json(verdict.as_dict())
    elif verdict.ok:
        console.print(f"{what}: intact — {verdict.records} records, {verdict.anchors} signed heads, signed up to "
                      f"record {verdict.covered_to}")
    else:
        console.print(f"[bold red]{what}: BROKEN at record {verdict.first_bad}[/]: {verdict.problem}")
    if not verdict.ok:
        raise typer.Exit(1)


def _line(rec: dict) -> str:
    who = f"{rec['actor']['name']} ({rec['actor']['role']})" if rec.get("actor") else "hub"
    details = rec.get("details") or {}
    req = details.get("request") if isinstance(details.get("request"), dict) else None
    if req:
        details = {**{k: v for k, v in details.items() if k != "request"},
                   **{k: req[k] for k in ("zones", "signal", "mode") if k in req}}
    shown = " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in details.items())
    ts = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec["ts"]))
    return f"{ts}  #{rec['seq']:<5} {who:<28} {rec['action']:<20} {rec['subject']}  {shown}".rstrip()


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="The tamper-evident audit chain: verify, export, read.")
    app.add_typer(group, name="audit")

    @group.command("verify")
    def verify_cmd(config: Path = ConfigOpt,
                   broker: str | None = typer.Option(None, "--broker", help="also check the signed head retained "
                                                     "on this MQTT broker (a copy outside the hub's disk)"),
                   as_json: bool = JsonOpt) -> None:
        """Recompute the chain and check every signed head; exit 1 naming the first bad record."""
        from hub.audit import Anchor, load_anchors
        from hub.audit.retention import verify_log

        cfg, log, keys = _state(config, as_json)
        anchors = load_anchors(log)
        if broker:
            from pydantic import ValidationError

            try:
                head = retained_head(broker, tenant=cfg.hub.tenant)  # this hub's tenant's head
            except ValidationError as exc:
                fail(f"--broker: {exc.errors()[0]['msg'].removeprefix('Value error, ')}", as_json=as_json, code=2)
            except OSError as exc:  # refused, unreachable, TLS handshake (ssl.SSLError is an OSError)
                fail(f"cannot read the audit head from the broker {broker}: {exc.strerror or exc} (is it up, and "
                     f"does it accept this client?)", as_json=as_json, code=1)
            if head is None:
                fail(f"no signed audit head retained on {broker}", as_json=as_json, code=1)
            try:
                anchors.append(Anchor.from_dict(head))
            except (KeyError, TypeError, ValueError):
                fail(f"the retained audit head on {broker} is malformed", as_json=as_json, code=1)
        _report(verify_log(log, anchors, keys.verification_keys()), as_json, "audit chain")

    @group.command("prune")
    def prune_cmd(config: Path = ConfigOpt,
                  days: float | None = typer.Option(None, "--days", help="prune records older than this many "
                                                    "days [default: the config's [hub] audit_retention_days]"),
                  as_json: bool = JsonOpt) -> None:
        """Archive the records older than the retention into the state dir's audit-archive/ and drop them from
        the database (the hub does this every hour by itself); the chain stays verifiable."""
        from hub.audit.retention import ARCHIVE_DIR, prune
        from hub.errors import StoreError

        cfg, log, keys = _state(config, as_json)
        keep_days = cfg.hub.audit_retention_days if days is None else days
        if keep_days <= 0:
            fail("--days must be more than 0", as_json=as_json, code=2)
        try:
            done = prune(log, keys.private, before_ts=time.time() - keep_days * 86400,
                         archive_dir=cfg.hub.state_dir / ARCHIVE_DIR)
        except StoreError as exc:
            fail(str(exc), as_json=as_json, code=1)
        if as_json:
            emit_json(done.as_dict() if done else {"records": 0})
        elif done:
            console.print(f"archived records {done.first_seq}..{done.through_seq} ({done.records}) to "
                          f"{done.archive} and pruned them")
        else:
            console.print(f"nothing older than {keep_days:g} days to prune")

    @group.command("export")
    def export_cmd(config: Path = ConfigOpt,
                   since: str | None = typer.Option(None, "--since", help="24h, 7d, epoch seconds or ISO time "
                                                    "[default: everything]"),
                   out: Path | None = typer.Option(None, "--out", help="write here instead of stdout")) -> None:
        """JSON Lines of the records (and signed heads) since a time; the head is signed now if it is not yet."""
        from hub.audit import anchor_head, export_lines, load_anchors
        from hub.violations.export import BadFilter, parse_time

        try:
            since_ts = parse_time(since, "--since")
        except BadFilter as exc:
            fail(str(exc), code=2)
        _, log, keys = _state(config, False)
        try:
            fh = out.open("w") if out else sys.stdout
        except OSError as exc:
            fail(f"--out {out}: cannot write ({exc.strerror or exc})", code=2)
        records = log.records(since_ts=since_ts)
        anchors = load_anchors(log)
        if records and not any(a.seq == log.head()[0] and a.kid == keys.kid for a in anchors):
            anchors.append(anchor_head(log, keys.private))  # cover the tail with a signature
        lines = export_lines(records, anchors, kid=keys.kid, public_key=keys.public_b64)
        try:
            for line in lines:
                fh.write(line + "\n")
        finally:
            if out:
                fh.close()
        if out:
            console.print(f"wrote {len(records)} records to {out}", style="dim")

    @group.command("verify-export")
    def verify_export_cmd(file: Path = typer.Argument(..., help="a `dozor audit export` file"),
                          public_key: str = typer.Option(..., "--public-key", help="the hub's public key "
                                                         "(base64url, from `dozor hub pubkey`)"),
                          as_json: bool = JsonOpt) -> None:
        """Verify an export offline with the hub's public key alone."""
        from contract.command import public_key_from_b64
        from hub.audit import ExportError, verify_export

        try:
            key = public_key_from_b64(public_key)
        except ValueError as exc:
            fail(f"--public-key: {exc}", as_json=as_json, code=2)
        try:
            with file.open() as fh:
                verdict = verify_export(fh, key)
        except OSError as exc:
            fail(f"cannot read {file}: {exc.strerror or exc}", as_json=as_json, code=2)
        except ExportError as exc:
            fail(f"{file}: {exc}", as_json=as_json, code=1)
        _report(verdict, as_json, f"export {file.name}")

    @group.command("log")
    def log_cmd(alert: str | None = typer.Option(None, "--alert", help="only records about this alert"),
                actor: str | None = typer.Option(None, "--actor", help="only records by this user"),
                config: Path | None = typer.Option(None, "--config", "-c", help="read the hub's state dir "
                                                   "directly instead of asking the hub API"),
                hub: str | None = HubOpt, token: str | None = TokenOpt, as_json: bool = JsonOpt) -> None:
        """The audit records, oldest first: when, who (role), what, about what."""
        if config is not None:
            _, log, _ = _state(config, as_json)
            rows = [r.as_dict() for r in log.records(subject=alert, actor=actor)]
        else:
            from dozor.client import HubClientError

            try:
                with client(hub, token) as c:
                    rows = c.audit(alert=alert, actor=actor)
            except HubClientError as exc:
                fail(str(exc), as_json=as_json)
        if as_json:
            emit_json(rows)
            return
        if not rows:
            console.print("no audit records match", style="dim")
        for rec in rows:
            console.print(_line(rec), markup=False, highlight=False)
