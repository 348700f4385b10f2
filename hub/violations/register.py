"""The violations register in the hub's state backend (hub/repo: ``violations.sqlite`` (WAL) or PostgreSQL): one row
per pass-by event, an append-only audit trail, evidence keys.

Rows are inserted once per Event id and once per signed record id (``ON CONFLICT DO NOTHING``: a redelivered event,
or the same record under another Event id, is a duplicate, not a second row).
The audit table refuses UPDATE and DELETE (triggers). ``review`` changes a row's state and appends its audit entry
in one transaction. Every database error becomes a ``StoreError``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.repo import Backend, Database
from hub.repo.schema import VIOLATIONS

STATES = ("candidate", "confirmed", "dismissed")
SUMMARY_COLUMNS = ("id", "record_id", "gateway", "sensor", "zone", "lat", "lon", "distance_m", "start", "end",
                   "peak", "lafmax", "lafmax_75", "sel", "class", "scores", "suppressed", "suppression", "flags",
                   "candidate", "enforceable", "signature", "kid", "key_source", "signature_detail", "state", "received",
                   "updated")
_JSON = ("scores", "suppression", "flags")
_BOOL = ("suppressed", "candidate", "enforceable")


@dataclass(frozen=True)
class Filters:
    since: float | None = None
    until: float | None = None
    zone: str | None = None
    min_level: float | None = None  # LAFmax normalised to 7.5 m
    state: str | None = None
    gateway: str | None = None
    limit: int = 1000

    def where(self) -> tuple[str, list[Any]]:
        parts, args = [], []
        for sql, value in (("start >= ?", self.since), ("start < ?", self.until), ("zone = ?", self.zone),
                           ("lafmax_75 >= ?", self.min_level), ("state = ?", self.state),
                           ("gateway = ?", self.gateway)):
            if value is not None:
                parts.append(sql)
                args.append(value)
        return (" WHERE " + " AND ".join(parts)) if parts else "", args


def _cols(names: tuple[str, ...]) -> str:
    return ",".join(f'"{c}"' for c in names)


def _row(names: tuple[str, ...], values: tuple) -> dict[str, Any]:
    out = dict(zip(names, values, strict=True))
    for k in _JSON:
        if k in out:
            out[k] = json.loads(out[k])
    for k in _BOOL:
        if k in out:
            out[k] = bool(out[k])
    return out


class Register:
    def __init__(self, where: Path | Database) -> None:
        self.db = where if isinstance(where, Database) else Backend.sqlite(where.parent).open(VIOLATIONS, path=where)
        self.path = self.db.where

    def _q(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        return self.db.query(sql, args)

    # ------------------------------------------------------------ writes
    def insert(self, row: dict[str, Any], *, now: float | None = None) -> bool:
        """Insert a new event and its ``received`` audit entry; False if the id is already there."""
        now = time.time() if now is None else now
        doc = {**row, "received": now, "updated": now}
        for k in _JSON:
            doc[k] = json.dumps(doc[k], separators=(",", ":"))
        for k in _BOOL:
            doc[k] = int(bool(doc[k]))
        cols = (*SUMMARY_COLUMNS, "record")
        with self.db.transaction() as tx:
            if tx.execute(f"INSERT INTO noise_events ({_cols(cols)}) VALUES ({','.join('?' * len(cols))}) "
                          "ON CONFLICT DO NOTHING", [doc[c] for c in cols]) == 0:
                return False
            tx.execute("INSERT INTO noise_audit (event, ts, who, action, note, previous, state) "
                       "VALUES (?,?,?,?,?,?,?)", (row["id"], now, "hub", "received",
                                                  f"signature {row['signature']}", None, row["state"]))
        return True

    def set_state(self, event_id: str, expect: str, state: str, *, who: str, action: str, note: str,
                  now: float | None = None) -> bool:
        """Move ``event_id`` from ``expect`` to ``state`` and append the audit entry, atomically.
        False if the row is no longer in ``expect`` (a concurrent review)."""
        now = time.time() if now is None else now
        with self.db.transaction() as tx:
            if tx.execute("UPDATE noise_events SET state=?, updated=? WHERE id=? AND state=?",
                          (state, now, event_id, expect)) != 1:
                return False
            tx.execute("INSERT INTO noise_audit (event, ts, who, action, note, previous, state) "
                       "VALUES (?,?,?,?,?,?,?)", (event_id, now, who, action, note, expect, state))
        return True

    def mark_verified(self, event_id: str, kid: str, source: str, detail: str, *, now: float | None = None) -> bool:
        """An unverified row whose key became known and whose signature holds: verified, with an audit entry."""
        now = time.time() if now is None else now
        with self.db.transaction() as tx:
            if tx.execute("UPDATE noise_events SET signature='verified', key_source=?, signature_detail=?, updated=? "
                          "WHERE id=? AND signature='unverified' AND kid=?",
                          (source, detail, now, event_id, kid)) != 1:
                return False
            tx.execute("INSERT INTO noise_audit (event, ts, who, action, note, previous, state) "
                       "SELECT id, ?, 'hub', 'verified', ?, state, state FROM noise_events WHERE id=?",
                       (now, f"signature verified later: {detail}", event_id))
        return True

    def unverified(self, gateway: str, kids: list[str]) -> list[tuple[str, str, str]]:
        """(id, kid, record JSON) of unverified rows of ``gateway`` signed with one of ``kids``."""
        if not kids:
            return []
        return [tuple(r) for r in self._q(
            f"SELECT id, kid, record FROM noise_events WHERE gateway=? AND signature='unverified' "
            f"AND kid IN ({','.join('?' * len(kids))})", [gateway, *kids])]

    def add_key(self, gateway: str, kid: str, key: str, source: str) -> bool:
        return self.db.execute("INSERT INTO noise_keys VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                               (gateway, kid, key, source, time.time())) == 1

    # ------------------------------------------------------------ reads
    def keys(self) -> list[tuple[str, str, str]]:
        return [(gw, kid, key) for gw, kid, key in self._q("SELECT gateway, kid, key FROM noise_keys")]

    def get(self, event_id: str, *, record: bool = False) -> dict[str, Any] | None:
        cols = (*SUMMARY_COLUMNS, "record") if record else SUMMARY_COLUMNS
        rows = self._q(f"SELECT {_cols(cols)} FROM noise_events WHERE id=?", (event_id,))
        if not rows:
            return None
        out = _row(cols, rows[0])
        if record:
            out["record"] = json.loads(out["record"])
        return out

    def list(self, f: Filters) -> list[dict[str, Any]]:
        where, args = f.where()
        rows = self._q(f"SELECT {_cols(SUMMARY_COLUMNS)} FROM noise_events{where} "
                       "ORDER BY start, id LIMIT ?", [*args, f.limit])
        return [_row(SUMMARY_COLUMNS, r) for r in rows]

    def audit(self, event_id: str) -> list[dict[str, Any]]:
        names = ("seq", "ts", "who", "action", "note", "previous", "state")
        return [dict(zip(names, r, strict=True)) for r in self._q(
            f"SELECT {','.join(names)} FROM noise_audit WHERE event=? ORDER BY seq", (event_id,))]

    def counts(self, since: float, until: float, by: str) -> list[tuple]:
        """(by-value, state, n) for events starting in [since, until); ``by`` is a column name."""
        assert by in ("zone", "class", "signature")
        return self._q(f'SELECT "{by}", state, COUNT(*) FROM noise_events WHERE start >= ? AND start < ? '
                       f'GROUP BY "{by}", state ORDER BY "{by}", state', (since, until))

    def flag_counts(self, since: float, until: float) -> tuple[int, int, int, int]:
        """(total, enforceable, suppressed, unverified) for events starting in [since, until)."""
        rows = self._q("SELECT COUNT(*), COALESCE(SUM(enforceable),0), COALESCE(SUM(suppressed),0), "
                       "COALESCE(SUM(CASE WHEN signature != 'verified' THEN 1 ELSE 0 END),0) FROM noise_events "
                       "WHERE start >= ? AND start < ?",
                       (since, until))
        return tuple(int(v) for v in rows[0])  # type: ignore[return-value]

    def top_sensors(self, since: float, until: float, n: int = 10) -> list[tuple]:
        rows = self._q("SELECT gateway, sensor, MAX(zone), COUNT(*), SUM(CASE WHEN state='confirmed' THEN 1 ELSE 0 END),"
                       " MAX(lafmax_75) FROM noise_events WHERE start >= ? AND start < ? GROUP BY gateway, sensor "
                       "ORDER BY COUNT(*) DESC, gateway, sensor LIMIT ?", (since, until, n))
        return [(gw, sensor, zone, int(count), int(confirmed), peak) for gw, sensor, zone, count, confirmed, peak in rows]

    def close(self) -> None:
        self.db.close()
