"""One hash chain of audit records in the hub's state backend (hub/repo: ``audit.sqlite`` in the state dir, or
the ``audit_chain`` table in PostgreSQL).

Each record: seq (1, 2, ...), ts (unix seconds), actor (name, role, via; or null for the hub itself),
action (``user.add``, ``alert.start``, ...), subject (what it is about: a user name, an alert id ...),
details (a JSON object), prev_hash (the previous record's hash; 64 zeros for the first) and
hash = sha256 over the canonical JSON of all the other fields (keys sorted, no spaces, UTF-8).

Appends are one transaction each holding the chain's writer lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an
advisory lock), so the hub and the CLI (user changes while the hub runs), or several hubs, can all append: the
database serialises them and the chain stays one line.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.identity.roles import Actor
from hub.repo import Backend, Database
from hub.repo.schema import AUDIT

AUDIT_FILE = "audit.sqlite"
GENESIS = "0" * 64


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


@dataclass(frozen=True)
class Record:
    seq: int
    ts: float
    actor: dict | None
    action: str
    subject: str
    details: dict
    prev_hash: str
    hash: str

    def body(self) -> dict:
        """Everything the hash covers."""
        return {"seq": self.seq, "ts": self.ts, "actor": self.actor, "action": self.action,
                "subject": self.subject, "details": self.details, "prev_hash": self.prev_hash}

    def as_dict(self) -> dict:
        return {**self.body(), "hash": self.hash}

    def computed_hash(self) -> str:
        return record_hash(self.body())


def record_hash(body: dict) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def _details(details: dict) -> dict:
    """JSON-safe details (values json can't carry become strings), so the stored form hashes the same."""
    return json.loads(json.dumps(details, default=str, allow_nan=False))


class AuditLog:
    """``append(actor, action, subject, details) -> Record``; reads for ``dozor audit``."""

    def __init__(self, where: Path | Database) -> None:
        self.db = where if isinstance(where, Database) else Backend.sqlite(where.parent).open(AUDIT, path=where)
        self.path = self.db.where
        self.on_append: list = []  # callables(Record): metrics, anchoring

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> AuditLog:
        return cls(state_dir / AUDIT_FILE)

    @classmethod
    def in_backend(cls, backend: Backend) -> AuditLog:
        return cls.in_state_dir(backend.state_dir) if backend.kind == "sqlite" else cls(backend.open(AUDIT))

    def append(self, actor: Actor | None, action: str, subject: str, details: dict | None = None) -> Record:
        body_details = _details(details or {})
        actor_doc = actor.as_dict() if actor is not None else None
        with self.db.transaction(lock="audit_chain") as tx:
            rows = tx.query("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1")
            seq, prev = (rows[0][0] + 1, rows[0][1]) if rows else (1, GENESIS)
            body = {"seq": seq, "ts": time.time(), "actor": actor_doc, "action": action, "subject": subject,
                    "details": body_details, "prev_hash": prev}
            rec = Record(**body, hash=record_hash(body))
            tx.execute("INSERT INTO audit_chain VALUES (?,?,?,?,?,?,?,?)",
                       (rec.seq, rec.ts, json.dumps(actor_doc) if actor_doc else None, action, subject,
                        json.dumps(body_details, ensure_ascii=False), prev, rec.hash))
        for hook in self.on_append:
            hook(rec)
        return rec

    # ------------------------------------------------------------ reads
    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.db.query(sql, args)

    @staticmethod
    def _record(row: tuple) -> Record:
        seq, ts, actor, action, subject, details, prev, digest = row
        return Record(seq, ts, json.loads(actor) if actor else None, action, subject, json.loads(details),
                      prev, digest)

    def records(self, *, since_seq: int = 0, since_ts: float | None = None, subject: str | None = None,
                actor: str | None = None, limit: int | None = None) -> list[Record]:
        """Stored order (by seq, the storage order, not re-sorted: a reordered table shows as such)."""
        where, args = ["seq > ?"], [since_seq]
        if since_ts is not None:
            where.append("ts >= ?")
            args.append(since_ts)
        if subject is not None:
            where.append(f"(subject = ? OR {self.db.json_text('details', 'alert')} = ?)")
            args += [subject, subject]
        if actor is not None:
            where.append(f"{self.db.json_text('actor', 'name')} = ?")
            args.append(actor)
        sql = f"SELECT * FROM audit_chain WHERE {' AND '.join(where)} ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [self._record(r) for r in self._rows(sql, tuple(args))]

    def last(self, action: str) -> Record | None:
        """The newest record of ``action``, or None."""
        rows = self._rows("SELECT * FROM audit_chain WHERE action = ? ORDER BY seq DESC LIMIT 1", (action,))
        return self._record(rows[0]) if rows else None

    def head(self) -> tuple[int, str]:
        row = self._rows("SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1")
        return (row[0][0], row[0][1]) if row else (0, GENESIS)

    def record_at(self, seq: int) -> Record | None:
        rows = self._rows("SELECT * FROM audit_chain WHERE seq = ?", (seq,))
        return self._record(rows[0]) if rows else None

    def close(self) -> None:
        self.db.close()
