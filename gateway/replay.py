"""Persistent gateway state in SQLite (WAL): the replay store of seen command ids, and the session counter.

A jti is kept until its ``exp`` (commands live at most 900 s, so the table stays small) and survives
restarts and power loss: with ``durable=True`` every insert is fsynced (synchronous=FULL) before the
command may drive anything. Calls are synchronous and short; the gateway calls them from its loop.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gateway.errors import ReplayStoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (jti TEXT PRIMARY KEY, exp INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_exp ON seen(exp);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""
PURGE_EVERY_S = 60.0


class StateStore:
    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ReplayStoreError(f"cannot open the state database {self.path}: {exc}") from None
        self._last_purge = 0.0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ replay
    def first_sighting(self, jti: str, exp: int, now: float | None = None) -> bool:
        """Record ``jti`` until ``exp``; False if it was seen before (a replay)."""
        now = time.time() if now is None else now
        try:
            if now - self._last_purge > PURGE_EVERY_S:
                self._db.execute("DELETE FROM seen WHERE exp < ?", (int(now) - 1,))
                self._last_purge = now
            cur = self._db.execute("INSERT OR IGNORE INTO seen (jti, exp) VALUES (?, ?)", (jti, int(exp)))
        except sqlite3.Error as exc:
            raise ReplayStoreError(f"replay store: {exc}") from None
        return cur.rowcount == 1

    def seen_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM seen").fetchone()[0])

    # ------------------------------------------------------------ session counter
    def next_session(self) -> int:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT value FROM kv WHERE key = 'session'").fetchone()
            value = (row[0] if row else 0) + 1
            self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES ('session', ?)", (value,))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise ReplayStoreError(f"session counter: {exc}") from None
        return value
