"""Persistence for the hub: alerts, per-device alert state, commands, the audit log, the gateway registry and
zone-state versions, in the ``hub`` component of the state backend (hub/repo: ``hub.sqlite`` (WAL,
synchronous=NORMAL) by default, or PostgreSQL).

Writes are queued in memory and committed together by ``flush()`` (called periodically, and at once
where durability matters before acting, e.g. before commands for a new alert are published). A flush is
one transaction, so the ack hot path never pays a commit per ack. WAL + synchronous=NORMAL survives a
process kill -9 (only an OS crash can lose the last transactions).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.errors import StoreError
from hub.repo import Backend, Database, Tx
from hub.repo.db import Conflict
from hub.repo.schema import HUB


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), default=str)


def _alert_row(row: Any) -> tuple[str, float, str]:
    status, created, doc = row.row()  # the doc as a dict, or already as JSON (hub.alerts.model.Alert.row)
    return status, created, doc if isinstance(doc, str) else _dumps(doc)


# (table, columns, key): upserted by Tx.upsert_many
ALERTS = ("alerts", ("id", "status", "created", "doc"), ("id",))
DEVICES = ("alert_devices", ("alert", "gateway", "device", "doc"), ("alert", "gateway", "device"))
GATEWAYS = ("gateways", ("id", "doc"), ("id",))
ZONES = ("zone_states", ("zone", "version", "doc"), ("zone",))
COMMAND_COLUMNS = ("jti", "alert", "gateway", "phase_seq", "act", "targets", "sent", "token_sha256")


@dataclass
class _Taken:
    """The queued writes one transaction takes (the objects, to queue them again, and their rows)."""

    alerts: dict
    devices: dict
    commands: list
    audit: list
    gateways: dict
    zones: dict
    batches: tuple

    @property
    def count(self) -> int:
        return sum(len(x) for x in (self.alerts, self.devices, self.commands, self.audit, self.gateways, self.zones))


class Store:
    def __init__(self, where: Path | Database) -> None:
        self.db = where if isinstance(where, Database) else Backend.sqlite(where.parent).open(HUB, path=where)
        self.path = self.db.where
        self.fence: Callable[[Tx], None] | None = None  # e.g. hub.repo.lease.Lease.check: writes only as leader
        self._alerts: dict[str, Any] = {}
        self._devices: dict[tuple[str, str, str], Any] = {}  # objects with .doc(): serialised at flush
        self._commands: list[tuple] = []
        self._audit: list[tuple] = []
        self._gateways: dict[str, str] = {}
        self._zones: dict[str, tuple[int, str]] = {}
        self.flushes = 0
        self._idle = threading.Event()  # no flush_off_loop transaction in flight
        self._idle.set()
        self._failed: _Taken | None = None  # the rows of a flush_off_loop that failed
        self._writer: asyncio.Lock | None = None

    # ------------------------------------------------------------ queued writes
    def put_alert(self, alert_id: str, row: Any) -> None:
        """Queue an alert; ``row.row()`` -> (status, created, doc) is read at flush time."""
        self._alerts[alert_id] = row

    def put_device(self, alert_id: str, gateway: str, device: str, row: Any) -> None:
        """Queue a device row; ``row`` has ``.doc()``, read at flush time, so many updates cost one write."""
        self._devices[(alert_id, gateway, device)] = row

    def put_devices(self, alert_id: str, rows: Iterable[Any]) -> None:
        """``put_device`` for many rows at once, each with ``.gateway`` and ``.device`` (a phase's tracks)."""
        self._devices.update(((alert_id, r.gateway, r.device), r) for r in rows)

    def put_command(self, jti: str, alert_id: str, gateway: str, phase_seq: int, act: str,
                    targets: list[str] | str, sent: float, token_sha256: str) -> None:
        """``targets``: the device ids, or already their JSON list (the command's own encoding of them)."""
        text = targets if isinstance(targets, str) else _dumps(targets)
        self._commands.append((jti, alert_id, gateway, phase_seq, act, text, sent, token_sha256))

    def audit(self, kind: str, detail: dict, alert_id: str | None = None) -> None:
        self._audit.append((time.time(), alert_id, kind, _dumps(detail)))

    def put_gateway(self, gateway: str, doc: dict) -> None:
        self._gateways[gateway] = _dumps(doc)

    def put_zone_state(self, zone: str, version: int, doc: dict) -> None:
        self._zones[zone] = (version, _dumps(doc))

    @property
    def dirty(self) -> bool:
        return bool(self._alerts or self._devices or self._commands or self._audit or self._gateways
                    or self._zones or self._failed)

    def flush(self, *, devices: bool = True, max_devices: int | None = None) -> int:
        """Commit the queued writes in one transaction; returns the number of rows written.

        ``devices=False`` leaves the per-device rows for the next flush (the alert start path: a restarted
        hub rebuilds missing device rows from the commands' targets); ``max_devices`` writes at most that many
        of them (the oldest queued) and leaves the rest queued, so one flush never holds the loop for a whole
        city's rows. A ``flush_off_loop`` still writing is waited for first: transactions commit in the order
        their rows were taken."""
        self._idle.wait()
        taken = self._take(devices, max_devices)
        if taken is None:
            return 0
        try:
            self._commit(taken)
        except BaseException:
            self._put_back(taken)  # the queued writes stay queued: the next flush retries them
            raise
        return taken.count

    async def flush_off_loop(self, *, devices: bool = False, max_devices: int | None = None) -> int:
        """``flush`` with its transaction in a worker thread on PostgreSQL (a dispatch step's commands wait for
        it, the event loop does not: acks and the next step go on meanwhile; so do the periodic flush's device
        rows); SQLite flushes here. One such write at a time; a plain ``flush`` meanwhile waits for it, and rows
        of a failed one are queued again by the next flush (the rows queued since are newer and win)."""
        if self.db.dialect != "postgres":
            return self.flush(devices=devices, max_devices=max_devices)
        if self._writer is None:
            self._writer = asyncio.Lock()
        async with self._writer:
            self._idle.wait()  # (a plain flush never leaves one in flight; this is for a cancelled caller's)
            taken = self._take(devices, max_devices)
            if taken is None:
                return 0
            self._idle.clear()
            done = asyncio.get_running_loop().run_in_executor(None, self._commit_in_thread, taken)
            done.add_done_callback(lambda f: f.cancelled() or f.exception())  # (seen here if the caller left)
            await asyncio.shield(done)  # a cancelled caller leaves the transaction to finish (or fail) alone
            return taken.count

    def _commit_in_thread(self, taken: _Taken) -> None:
        try:
            self._commit(taken)
        except BaseException:
            self._failed = taken  # queued again (on the loop) by the next flush
            raise
        finally:
            self._idle.set()

    def _take(self, devices: bool, max_devices: int | None) -> _Taken | None:
        """The queued writes for one transaction, taken out of the queues (serialised here, on the loop)."""
        if self._failed is not None:
            self._put_back(self._failed)
            self._failed = None
        if not self.dirty:
            return None
        devices_q = self._devices if devices else {}
        if devices and max_devices is not None and len(devices_q) > max_devices:
            devices_q = {k: devices_q[k] for k in itertools.islice(devices_q, max_devices)}
        batches = ((ALERTS, [(k, *_alert_row(v)) for k, v in self._alerts.items()]),
                   (DEVICES, [(*k, _dumps(v.doc())) for k, v in devices_q.items()]),
                   (GATEWAYS, list(self._gateways.items())),
                   (ZONES, [(k, *v) for k, v in self._zones.items()]))
        if not (self._commands or self._audit or any(rows for _, rows in batches)):
            return None  # only device rows are queued, and this flush leaves them
        taken = _Taken(self._alerts, devices_q, self._commands, self._audit, self._gateways, self._zones, batches)
        self._alerts, self._commands, self._audit, self._gateways, self._zones = {}, [], [], {}, {}
        if devices_q is self._devices:
            self._devices = {}
        else:
            for key in devices_q:
                del self._devices[key]
        return taken

    def _put_back(self, taken: _Taken) -> None:
        """Rows of a transaction that failed go back in front of the queues; what was queued since is newer."""
        self._alerts = {**taken.alerts, **self._alerts}
        self._devices = {**taken.devices, **self._devices}
        self._commands, self._audit = taken.commands + self._commands, taken.audit + self._audit
        self._gateways = {**taken.gateways, **self._gateways}
        self._zones = {**taken.zones, **self._zones}

    def _commit(self, taken: _Taken) -> None:
        try:
            try:
                self._write(taken.batches, taken.commands, taken.audit, fresh=True)
            except Conflict:  # a command row already stored (a flush that committed but failed to say so)
                self._write(taken.batches, taken.commands, taken.audit, fresh=False)
        except StoreError as exc:
            raise StoreError(f"cannot write hub state {self.path}: {exc}") from None
        self.flushes += 1

    def _write(self, batches: tuple, commands: list[tuple], audit: list[tuple], *, fresh: bool) -> None:
        """One transaction. ``fresh``: command rows are new (their ids are fresh random ones), so they go in as
        plain inserts (PostgreSQL: one COPY, ~3x faster than upserts for a dispatch step's 800 rows, measured in
        bench.city); a Conflict means one was stored already, and the caller writes it all again as upserts."""
        with self.db.transaction() as tx:
            if self.fence is not None:
                self.fence(tx)
            for (table, columns, key), rows in batches:
                if rows:
                    tx.upsert_many(table, columns, key, rows)
            if commands and fresh:
                tx.insert_many("commands", COMMAND_COLUMNS, commands)
            elif commands:
                tx.upsert_many("commands", COMMAND_COLUMNS, ("jti",), commands)
            if audit:
                tx.insert_many("audit", ("ts", "alert", "kind", "detail"), audit)

    # ------------------------------------------------------------ reads (start-up and cold paths)
    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.db.query(sql, args)

    def load_alerts(self, *, open_only: bool = False) -> list[dict]:
        """Alerts oldest first; ``open_only``: only those not finished (waiting, live, a phase still tracked or
        zone states not settled), which is what a restarted hub keeps in memory."""
        where = (f" WHERE status IN ('pending_confirmation','active') OR {self.db.json_true('doc', 'tracking')}"
                 f" OR NOT {self.db.json_true('doc', 'zones_settled')}") if open_only else ""
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
            f"{self.db.json_true('doc', 'tracking')}",
            (cutoff,)) if i not in keep]
        try:
            with self.db.transaction() as tx:
                for table, col in (("alert_devices", "alert"), ("commands", "alert"), ("alerts", "id"),
                                   ("audit", "alert")):
                    if ids:
                        tx.executemany(f"DELETE FROM {table} WHERE {col}=?", [(i,) for i in ids])
                tx.execute("DELETE FROM audit WHERE ts < ? AND (alert IS NULL OR alert NOT IN "
                           "(SELECT id FROM alerts))", (cutoff,))
        except StoreError as exc:
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
