"""SQLite (WAL, synchronous=NORMAL) persistence for the hub: alerts, per-device alert state, commands,
the audit log, the gateway registry and zone-state versions.

Writes are queued in memory and committed together by ``flush()`` (called periodically, and at once
where durability matters before acting, e.g. before commands for a new alert are published). A flush is
one transaction, so the ack hot path never pays a commit per ack. WAL + synchronous=NORMAL survives a
process kill -9 (only an OS crash can lose the last transactions).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from hub.errors import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, status TEXT NOT NULL, created REAL NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_devices (
    alert TEXT NOT NULL, gateway TEXT NOT NULL, device TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (alert, gateway, device)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
    jti TEXT PRIMARY KEY, alert TEXT NOT NULL, gateway TEXT NOT NULL, phase_seq INTEGER NOT NULL,
    act TEXT NOT NULL, targets TEXT NOT NULL, sent REAL NOT NULL, token_sha256 TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS commands_alert ON commands (alert, phase_seq);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, alert TEXT, kind TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gateways (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS zone_states (zone TEXT PRIMARY KEY, version INTEGER NOT NULL, doc TEXT NOT NULL);
"""


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), default=str)


def _alert_row(row: Any) -> tuple[str, float, str]:
    status, created, doc = row.row()
    return status, created, _dumps(doc)


def open_wal(path: Path, schema: str, what: str) -> sqlite3.Connection:
    """The hub's SQLite files: WAL, synchronous=NORMAL, a busy timeout, the schema applied; readable errors."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(schema)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {what} {path}: {exc}") from None
    return db


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = open_wal(path, SCHEMA, "hub state")
        self._alerts: dict[str, Any] = {}
        self._devices: dict[tuple[str, str, str], Any] = {}  # objects with .doc(): serialised at flush
        self._commands: list[tuple] = []
        self._audit: list[tuple] = []
        self._gateways: dict[str, str] = {}
        self._zones: dict[str, tuple[int, str]] = {}
        self.flushes = 0

    # ------------------------------------------------------------ queued writes
    def put_alert(self, alert_id: str, row: Any) -> None:
        """Queue an alert; ``row.row()`` -> (status, created, doc) is read at flush time."""
        self._alerts[alert_id] = row

    def put_device(self, alert_id: str, gateway: str, device: str, row: Any) -> None:
        """Queue a device row; ``row`` has ``.doc()``, read at flush time, so many updates cost one write."""
        self._devices[(alert_id, gateway, device)] = row

    def put_command(self, jti: str, alert_id: str, gateway: str, phase_seq: int, act: str,
                    targets: list[str], sent: float, token_sha256: str) -> None:
        self._commands.append((jti, alert_id, gateway, phase_seq, act, _dumps(targets), sent, token_sha256))

    def audit(self, kind: str, detail: dict, alert_id: str | None = None) -> None:
        self._audit.append((time.time(), alert_id, kind, _dumps(detail)))

    def put_gateway(self, gateway: str, doc: dict) -> None:
        self._gateways[gateway] = _dumps(doc)

    def put_zone_state(self, zone: str, version: int, doc: dict) -> None:
        self._zones[zone] = (version, _dumps(doc))

    @property
    def dirty(self) -> bool:
        return bool(self._alerts or self._devices or self._commands or self._audit or self._gateways
                    or self._zones)

    def flush(self, *, devices: bool = True) -> int:
        """Commit the queued writes in one transaction; returns the number of rows written.

        ``devices=False`` leaves the per-device rows for the next flush (the alert start path: a restarted
        hub rebuilds missing device rows from the commands' targets)."""
        if not self.dirty:
            return 0
        alerts, commands = self._alerts, self._commands
        devices_q = self._devices if devices else {}
        audit, gateways, zones = self._audit, self._gateways, self._zones
        try:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR REPLACE INTO alerts VALUES (?,?,?,?)",
                                    [(k, *_alert_row(v)) for k, v in alerts.items()])
                self.db.executemany("INSERT OR REPLACE INTO alert_devices VALUES (?,?,?,?)",
                                    [(*k, _dumps(v.doc())) for k, v in devices_q.items()])
                self.db.executemany("INSERT OR REPLACE INTO commands VALUES (?,?,?,?,?,?,?,?)", commands)
                self.db.executemany("INSERT INTO audit (ts, alert, kind, detail) VALUES (?,?,?,?)", audit)
                self.db.executemany("INSERT OR REPLACE INTO gateways VALUES (?,?)", list(gateways.items()))
                self.db.executemany("INSERT OR REPLACE INTO zone_states VALUES (?,?,?)",
                                    [(k, *v) for k, v in zones.items()])
        except sqlite3.Error as exc:  # the queued writes stay queued: the next flush retries them
            raise StoreError(f"cannot write hub state {self.path}: {exc}") from None
        self._alerts, self._commands = {}, []
        if devices:
            self._devices = {}
        self._audit, self._gateways, self._zones = [], {}, {}
        self.flushes += 1
        return len(alerts) + len(devices_q) + len(commands) + len(audit) + len(gateways) + len(zones)

    # ------------------------------------------------------------ reads (start-up and cold paths)
    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read hub state {self.path}: {exc}") from None

    def load_alerts(self, *, open_only: bool = False) -> list[dict]:
        """Alerts oldest first; ``open_only``: only those not finished (waiting, live, a phase still tracked or
        zone states not settled), which is what a restarted hub keeps in memory."""
        where = (" WHERE status IN ('pending_confirmation','active') OR json_extract(doc,'$.tracking')"
                 " OR NOT json_extract(doc,'$.zones_settled')") if open_only else ""
        return [json.loads(doc) for (doc,) in self._query(f"SELECT doc FROM alerts{where} ORDER BY created")]

    def load_alert(self, alert_id: str) -> dict | None:
        rows = self._query("SELECT doc FROM alerts WHERE id=?", (alert_id,))
        return json.loads(rows[0][0]) if rows else None

    def load_recent_alerts(self, limit: int) -> list[dict]:
        rows = self._query("SELECT doc FROM alerts ORDER BY created DESC LIMIT ?", (limit,))
        return [json.loads(doc) for (doc,) in rows]

    def delete_alerts_before(self, cutoff: float, *, keep: set[str] = frozenset()) -> int:  # type: ignore[assignment]
        """Retention: delete finished alerts created before ``cutoff`` with their device rows and commands, and
        the event log (``audit`` table: gateway transitions, per-alert log) older than ``cutoff``; the
        tamper-evident audit chain (audit.sqlite) is not touched. Alerts in ``keep`` (still in memory) are never
        deleted, nor their log."""
        ids = [i for (i,) in self._query(
            "SELECT id FROM alerts WHERE created < ? AND status NOT IN ('pending_confirmation','active') AND NOT "
            "json_extract(doc,'$.tracking')",
            (cutoff,)) if i not in keep]
        try:
            with self.db:
                self.db.execute("BEGIN")
                for table, col in (("alert_devices", "alert"), ("commands", "alert"), ("alerts", "id"),
                                   ("audit", "alert")):
                    self.db.executemany(f"DELETE FROM {table} WHERE {col}=?", [(i,) for i in ids])
                self.db.execute("DELETE FROM audit WHERE ts < ? AND (alert IS NULL OR alert NOT IN "
                                "(SELECT id FROM alerts))", (cutoff,))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot delete old alerts from {self.path}: {exc}") from None
        return len(ids)

    def load_devices(self, alert_id: str) -> list[dict]:
        rows = self._query("SELECT doc FROM alert_devices WHERE alert=? ORDER BY gateway, device", (alert_id,))
        return [json.loads(doc) for (doc,) in rows]

    def load_commands(self, alert_id: str, phase_seq: int) -> list[dict]:
        rows = self._query("SELECT jti, gateway, act, targets, sent, token_sha256 FROM commands "
                           "WHERE alert=? AND phase_seq=?", (alert_id, phase_seq))
        return [{"jti": r[0], "gateway": r[1], "act": r[2], "targets": json.loads(r[3]), "sent": r[4],
                 "token_sha256": r[5]} for r in rows]

    def load_audit(self, alert_id: str) -> list[dict]:
        rows = self._query("SELECT ts, kind, detail FROM audit WHERE alert=? ORDER BY seq", (alert_id,))
        return [{"ts": ts, "kind": kind, **json.loads(detail)} for ts, kind, detail in rows]

    def load_gateways(self) -> list[dict]:
        return [json.loads(doc) for (doc,) in self._query("SELECT doc FROM gateways ORDER BY id")]

    def load_zone_states(self) -> dict[str, dict]:
        return {zone: json.loads(doc) for zone, doc in self._query("SELECT zone, doc FROM zone_states")}

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.db.close()
