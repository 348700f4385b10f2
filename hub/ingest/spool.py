"""Durable spool in front of a time-series writer: nothing is lost while the store is down.

Every batch of lines is first committed to SQLite (WAL, ``synchronous=FULL``), then written oldest first;
a row is deleted only after the store accepted it. While the store is unavailable the spool keeps
growing and retries with the shared ``runtime.backoff`` (jittered, capped); ``flush`` before the next retry time
does nothing. A batch the store *rejects* (``StoreRejected``) is split in halves and retried, down to
single lines; a single line that is still rejected moves to the ``dead`` table with its reason and is
counted -- kept for an operator, never silently dropped.

All methods are synchronous and serialised by a mutex; an asyncio hub calls them through
``asyncio.to_thread`` so the fsyncs and HTTP writes never block its event loop.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.errors import HubError
from hub.ingest.writer import StoreRejected, StoreUnavailable, Writer
from runtime.backoff import Backoff

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL,
                                  n INTEGER NOT NULL, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL,
                                 reason TEXT NOT NULL, ts REAL NOT NULL);
"""


class SpoolError(HubError):
    """The spool's SQLite file could not be used."""


@dataclass(frozen=True, slots=True)
class FlushResult:
    written_lines: int
    pending_lines: int
    store_up: bool


def _locked(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._mutex:
            return method(self, *args, **kwargs)
    return wrapper


class Spool:
    def __init__(self, path: str | os.PathLike[str], writer: Writer, *, backoff: Backoff | None = None,
                 clock: Callable[[], float] = time.monotonic, max_lines_per_write: int = 5000) -> None:
        self.path = Path(path)
        self.writer = writer
        self.backoff = backoff or Backoff()
        self._clock = clock
        self.max_lines_per_write = max_lines_per_write
        self.next_try = float("-inf")
        self.counters: Counter[str] = Counter()
        self.last_error: str | None = None
        self._mutex = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc

    def _exec(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: {exc}") from exc

    @_locked
    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- in ---------------------------------------------------------------------------------------------------

    @_locked
    def put(self, lines: Sequence[str]) -> None:
        """Commit lines durably (split into rows of at most ``max_lines_per_write``)."""
        lines = [part for ln in lines for part in ln.split("\n") if part]  # one row line = one stored line
        now = time.time()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                for i in range(0, len(lines), self.max_lines_per_write):
                    chunk = lines[i:i + self.max_lines_per_write]
                    self._db.execute("INSERT INTO spool (body, n, ts) VALUES (?, ?, ?)",
                                     ("\n".join(chunk), len(chunk), now))
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: {exc}") from exc
        self.counters["spooled_lines"] += len(lines)

    @_locked
    def write(self, lines: Sequence[str]) -> FlushResult:
        """What the hub calls: spool, then try to flush (unless backing off)."""
        self.put(lines)
        return self.flush()

    # ---- out --------------------------------------------------------------------------------------------------

    @_locked
    def flush(self, *, force: bool = False) -> FlushResult:
        """Write spooled rows oldest first until the spool is empty or the store fails."""
        if not force and self._clock() < self.next_try:
            return FlushResult(0, self.pending_lines, False)
        written = 0
        while True:
            row = self._exec("SELECT id, body, n FROM spool ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return FlushResult(written, 0, True)
            row_id, body, n = row
            lines = body.split("\n")
            try:
                self.writer.write(lines)
            except StoreUnavailable as exc:
                self.counters["write_failures"] += 1
                self.last_error = str(exc)
                self.next_try = self._clock() + self.backoff.next_delay()
                return FlushResult(written, self.pending_lines, False)
            except StoreRejected as exc:
                self.counters["rejected_batches"] += 1
                self._split_or_bury(row_id, lines, exc)
                continue
            self._exec("DELETE FROM spool WHERE id = ?", (row_id,))
            self.backoff.reset()
            self.next_try = float("-inf")
            self.last_error = None
            written += n
            self.counters["written_lines"] += n

    def _split_or_bury(self, row_id: int, lines: list[str], exc: StoreRejected) -> None:
        """Replace a rejected row by its two halves (in place, order kept), or bury a single line."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM spool WHERE id = ?", (row_id,))
                if len(lines) == 1:
                    self._db.execute("INSERT INTO dead (line, reason, ts) VALUES (?, ?, ?)",
                                     (lines[0], f"{exc.reason}: {exc}"[:500], time.time()))
                else:
                    half = len(lines) // 2
                    # negative ids sort before every normal row, so the halves are retried next, in order
                    low = self._db.execute("SELECT MIN(id) FROM spool").fetchone()[0]
                    base = min(low if low is not None else 0, 0) - 2
                    self._db.execute("INSERT INTO spool (id, body, n, ts) VALUES (?, ?, ?, ?)",
                                     (base, "\n".join(lines[:half]), half, time.time()))
                    self._db.execute("INSERT INTO spool (id, body, n, ts) VALUES (?, ?, ?, ?)",
                                     (base + 1, "\n".join(lines[half:]), len(lines) - half, time.time()))
        except sqlite3.Error as e:
            raise SpoolError(f"spool {self.path}: {e}") from e
        if len(lines) == 1:
            self.counters["dead_lines"] += 1

    # ---- reporting ---------------------------------------------------------------------------------------------

    @property
    def pending_lines(self) -> int:
        return int(self._exec("SELECT COALESCE(SUM(n), 0) FROM spool").fetchone()[0])

    @property
    def pending_batches(self) -> int:
        return int(self._exec("SELECT COUNT(*) FROM spool").fetchone()[0])

    @_locked
    def dead(self) -> list[tuple[str, str]]:
        return [(line, reason) for line, reason in self._exec("SELECT line, reason FROM dead ORDER BY id")]
