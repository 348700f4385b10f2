"""Persistent gateway state in SQLite (WAL): the replay store of seen command ids, and the session counter.

A jti is kept until its ``exp`` (commands live at most 900 s, so the table stays small) and survives restarts.

Power loss without an fsync per command: inserts are committed with synchronous=NORMAL (WAL), which survives a
process crash but may lose the last commits on power loss. So the store keeps an "open" flag, set (fsynced)
when it opens and cleared (fsynced) when it closes cleanly. If it finds the flag still set, the previous run
ended uncleanly and seen ids may be missing: ``not_before`` is then this start's wall-clock time, and any
command issued before it is refused (``issued_before_restart``). Commands live at most 900 s and the hub retries
with freshly issued commands, so the operator loses nothing and an attacker gains no replay window.

Floor: a new state dir records its creation time (``floor``); commands issued before it are refused
(``before_floor``), so a gateway whose state dir was emptied or replaced accepts none of the commands captured
before (its replay store never saw them). Stops are exempt from both time checks: stopping is always safe.
``durable=True`` additionally fsyncs every insert (synchronous=FULL), for deployments that want both.
Calls are synchronous and short; the gateway calls them from its loop.
"""

from __future__ import annotations

import contextlib
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
            row = self._db.execute("SELECT value FROM kv WHERE key = 'open'").fetchone()
            self.unclean = bool(row and row[0])
            floor = self._db.execute("SELECT value FROM kv WHERE key = 'floor'").fetchone()
            if floor is None:
                # A new state dir (no 'open' flag yet) starts its floor now: every command captured before it
                # was created is refused, since its replay store cannot know them. An upgraded store: no floor.
                floor = (0 if row is not None else int(time.time()),)
                self._set_flag("floor", floor[0])
            self.floor = int(floor[0])
            self.not_before: float | None = time.time() if self.unclean else None
            self._set_flag("open", 1)
        except (sqlite3.Error, OSError) as exc:
            raise ReplayStoreError(f"cannot open the state database {self.path}: {exc}") from None
        self._durable = durable
        self._last_purge = 0.0

    def _set_flag(self, key: str, value: int) -> None:
        """Write a flag with a full fsync, whatever the store's normal synchronous level."""
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))
        self._db.execute(f"PRAGMA synchronous={'FULL' if getattr(self, '_durable', False) else 'NORMAL'}")

    def close(self) -> None:
        # A clean shutdown: every seen id is on disk. If this write fails the flag stays set and the next
        # start is treated as unclean, which is the safe side.
        with contextlib.suppress(sqlite3.Error):
            self._set_flag("open", 0)
        self._db.close()

    def issued_before_restart(self, iat: float) -> bool:
        """True if the previous run ended uncleanly and this command was issued before this start."""
        return self.not_before is not None and iat < self.not_before

    def issued_before_floor(self, iat: float) -> bool:
        """True if the command was issued before this state dir was created (docs/protocol.md, state loss)."""
        return iat < self.floor

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
