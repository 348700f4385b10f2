"""Durable spool in front of a time-series writer: nothing is lost while the store is down.

Every batch of lines is first committed to SQLite (WAL, ``synchronous=FULL``), then written oldest first;
a row is deleted only after the store accepted it (from the flush's own connection, ``synchronous=NORMAL``: the
delete survives a kill -9; a power cut can at worst have those lines written once more). The delete never waits
in SQLite's busy handler: it takes the spool's mutex, at once if no commit holds it, else after the next write
at the latest (that write skips the rows still to delete), so store writes overlap the commits' fsyncs. The
writer sends the bodies of recently committed rows from memory (``RECENT_MAX_LINES``), older ones are read
back from SQLite; which rows exist is always SQLite's answer. A batch is stored as
one text blob; batches are packed into rows of at most ``max_lines_per_write`` lines, and one store request
carries as many consecutive rows as fit in that size. While the store is unavailable the spool keeps
growing and retries with the shared ``runtime.backoff`` (jittered, capped); ``flush`` before the next retry time
does nothing. A batch the store *rejects* (``StoreRejected``) is split in halves and retried, down to
single lines; a single line that is still rejected moves to the ``dead`` table with its reason and is
counted -- kept for an operator, never silently dropped.

Exactly once: each batch of lines may carry a stable key (the hub uses ``t:<gateway>:<session>:<seq>`` for a
telemetry batch and ``e:<gateway>:<event id>`` for an event). ``put_groups`` records the key in the ``seen``
table in the same transaction as the lines, and skips a group whose key is already there, so a batch the
broker redelivers after a hub kill -9 (spooled, PUBACK not yet sent) is stored once, across restarts. Keys
are kept ``SEEN_MAX_AGE_S`` and at most ``SEEN_MAX_KEYS``; the ``dead`` table keeps ``DEAD_MAX_LINES``.
After an unclean stop (no clean ``close``), rows at the head may be in the store already (killed between the
store's answer and the delete): the first flush asks ``head_check`` which of their lines the store still misses
and writes only those (hub/ingest/recovery.py). The spool itself is bounded by ``max_pending_lines``: beyond it the oldest rows are dropped and counted
(``dropped_lines``), logged as an error, never silently.

All methods are synchronous and serialised by a mutex; an asyncio hub calls them through
``asyncio.to_thread`` so the fsyncs and HTTP writes never block its event loop.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hub.errors import HubError
from hub.ingest.recovery import HeadCheck, check_head
from hub.ingest.rows import pack, split_rows
from hub.ingest.spool_sql import add_seen, insert_rows, seen_of
from hub.ingest.writer import StoreRejected, StoreUnavailable, Writer
from runtime.backoff import Backoff

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL,
                                  n INTEGER NOT NULL, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY AUTOINCREMENT, line TEXT NOT NULL,
                                 reason TEXT NOT NULL, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, ts REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS seen_by_ts ON seen (ts);
CREATE INDEX IF NOT EXISTS spool_sizes ON spool (id, n);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;
"""
SEEN_MAX_AGE_S = 14 * 86400.0  # longer than a gateway keeps telemetry (7 days): a redelivery is always caught
SEEN_MAX_KEYS = 2_000_000  # ~100 MB at most; 500 gateways x 1 batch/s fill it in ~67 min only if age allows
DEAD_MAX_LINES = 100_000
PRUNE_EVERY_S = 60.0
# rows are whole request bodies (~100 kB of line protocol): 64 kB pages cut the overflow-page chains SQLite writes,
# frees and checkpoints 16-fold (the write path's CPU per 2 M points: deletes ~0.15 -> ~0.09 s)
PAGE_SIZE = 65536
HEAD_SETTLE_S = 3.0  # after an unclean stop, the head is checked this long after the open (see recovery.py)
RECENT_MAX_LINES = 100_000  # bodies kept in memory for the writer (~12 MB of line protocol at most)

Group = tuple[str | None, Sequence[str]] | tuple[str | None, Sequence[str], int]


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
                 clock: Callable[[], float] = time.monotonic, max_lines_per_write: int = 5000,
                 max_pending_lines: int = 50_000_000, seen_max_age_s: float = SEEN_MAX_AGE_S,
                 seen_max_keys: int = SEEN_MAX_KEYS, head_check: HeadCheck | None = None,
                 head_settle_s: float = HEAD_SETTLE_S) -> None:
        self.path = Path(path)
        self.writer = writer
        self.backoff = backoff or Backoff()
        self._clock = clock
        self.max_lines_per_write = max_lines_per_write
        self.max_pending_lines = max_pending_lines
        self.seen_max_age_s = seen_max_age_s
        self.seen_max_keys = seen_max_keys
        self.head_check = head_check
        self.head_settle_s = head_settle_s
        self.head_checked_to: int | None = None
        self._last_prune = float("-inf")
        self.next_try = float("-inf")
        self.counters: Counter[str] = Counter()
        self.last_error: str | None = None
        self.last_write_at = 0.0  # wall-clock time (time.time()) the store last accepted a write; 0: never
        self._mutex = threading.RLock()
        self._flush_lock = threading.Lock()
        # the bodies of recently committed rows (id -> body), so a flush sends them without reading them back;
        # SQLite stays the truth (which rows exist), this is only a cache, bounded by RECENT_MAX_LINES
        self._recent: dict[int, tuple[str, int]] = {}
        self._recent_lines = 0
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file only (a WAL file keeps its own)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._pending = int(self._db.execute("SELECT COALESCE(SUM(n), 0) FROM spool").fetchone()[0])
            state = self._db.execute("SELECT v FROM meta WHERE k = 'state'").fetchone()
            # rows left by an unclean stop may be in the store already (hub/ingest/recovery.py)
            self.suspect_head = self._pending > 0 and (state is None or state[0] != "closed")
            self._db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('state', 'open')")
            self._opened = clock()
            # the flush's own connection: in WAL mode its reads never wait for a commit, and its deletes skip the
            # fsync (synchronous=NORMAL: a delete survives a kill -9; only a power cut can undo one, and then
            # those lines are written once more)
            self._wdb = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            self._wdb.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot open spool {self.path}: {exc}") from exc

    def _exec(self, sql: str, args: Sequence[object] = (), *, db: sqlite3.Connection | None = None) -> sqlite3.Cursor:
        try:
            return (db or self._db).execute(sql, args)
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the files; the spool is marked closed cleanly (no write in flight), so the next open does not
        check its head against the store."""
        with self._flush_lock, self._mutex, contextlib.suppress(sqlite3.Error):
            if not self.suspect_head:  # an unchecked head stays suspect for the next open
                self._db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES ('state', 'closed')")
            self._wdb.close()
            self._db.close()
        if self.head_check is not None:
            self.head_check.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- in ---------------------------------------------------------------------------------------------------

    def put(self, lines: Sequence[str]) -> None:
        """Commit lines durably (split into rows of at most ``max_lines_per_write``)."""
        self.put_groups([(None, lines)])

    @_locked
    def put_groups(self, groups: Sequence[Group]) -> int:
        """Commit groups of lines in one transaction; a group whose key was seen before is skipped (durably
        de-duplicated). Each item of a group is one line or several joined by ``\n``; a group ``(key, items, n)``
        says it has ``n`` lines and no empty one (the ingest's own output: not scanned again). Returns how many
        groups were skipped."""
        now = time.time()
        skipped = 0
        chunks: list[str] = []
        counted: list[tuple[str, int]] = []
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                known = seen_of(self._db, [g[0] for g in groups if g[0] is not None])  # (spool_sql.py: why)
                fresh: list[str] = []
                for key, group, *n in groups:
                    if key is not None:
                        if key in known:
                            skipped += 1
                            continue
                        known.add(key)  # (the same key twice in one commit: the first one counts)
                        fresh.append(key)
                    if n and 0 < n[0] <= self.max_lines_per_write:
                        counted.append(("\n".join(group), n[0]))
                    else:
                        chunks += group
                add_seen(self._db, fresh, now)
                rows = pack(counted, self.max_lines_per_write) + split_rows(chunks, self.max_lines_per_write)
                ids = insert_rows(self._db, rows, now)
                added = sum(n for _, n in rows)
                self._pending += added
                if self._pending > self.max_pending_lines:
                    self._drop_oldest()
                if self._clock() - self._last_prune >= PRUNE_EVERY_S:
                    self._prune(now)
        except sqlite3.Error as exc:
            self._pending = int(self._db.execute("SELECT COALESCE(SUM(n), 0) FROM spool").fetchone()[0])
            raise SpoolError(f"spool {self.path}: {exc}") from exc
        self._remember(ids, rows)
        self.counters["spooled_lines"] += added
        self.counters["duplicate_groups"] += skipped
        return skipped

    def _remember(self, ids: list[int], rows: list[tuple[str, int]]) -> None:
        """Cache committed bodies (under the mutex) up to ``RECENT_MAX_LINES``: beyond it (a backlog) new rows
        are not cached, so the cache keeps the oldest, the ones the writer sends next."""
        for row_id, row in zip(ids, rows, strict=True):
            if self._recent_lines + row[1] > RECENT_MAX_LINES:
                return
            self._recent[row_id] = row
            self._recent_lines += row[1]

    def _forget(self, ids: Sequence[int]) -> None:
        for row_id in ids:
            if (row := self._recent.pop(row_id, None)) is not None:
                self._recent_lines -= row[1]

    def _drop_oldest(self) -> None:
        dropped = 0
        while self._pending > self.max_pending_lines:
            row = self._db.execute("SELECT id, n FROM spool ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            self._db.execute("DELETE FROM spool WHERE id = ?", (row[0],))
            self._forget((row[0],))
            self._pending -= row[1]
            dropped += row[1]
        self.counters["dropped_lines"] += dropped
        log.error("spool %s over its bound of %d lines: the oldest %d lines were dropped", self.path,
                  self.max_pending_lines, dropped)

    def _prune(self, now: float) -> None:
        """Bound the de-dup keys (age and count) and the dead-letter table (count)."""
        self._last_prune = self._clock()
        self._db.execute("DELETE FROM seen WHERE ts < ?", (now - self.seen_max_age_s,))
        extra = int(self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]) - self.seen_max_keys
        if extra > 0:
            self._db.execute("DELETE FROM seen WHERE key IN (SELECT key FROM seen ORDER BY ts LIMIT ?)", (extra,))
        self._db.execute("DELETE FROM dead WHERE id <= (SELECT MAX(id) FROM dead) - ?", (DEAD_MAX_LINES,))

    def write(self, lines: Sequence[str]) -> FlushResult:
        """What the hub calls: spool, then try to flush (unless backing off)."""
        self.put(lines)
        return self.flush()

    # ---- out --------------------------------------------------------------------------------------------------

    def flush(self, *, force: bool = False) -> FlushResult:
        """Write spooled rows oldest first until the spool is empty or the store fails. Consecutive rows go in
        one request of at most ``max_lines_per_write`` lines; after a rejection, row by row (then halves).
        One flush at a time; the store write itself runs outside the mutex, so commits go on meanwhile."""
        with self._flush_lock:
            return self._flush(force)

    def _take(self, single: bool, after: int | None) -> tuple[list[int], list[str], int]:
        """The next rows to write (ids above ``after``, if given: rows written whose delete is still pending):
        ids, bodies, line count (empty when the spool is). Bodies come from the cache when it has them."""
        where, args = ("WHERE id > ? ", (after,)) if after is not None else ("", ())
        found = self._exec(f"SELECT id, n FROM spool {where}ORDER BY id LIMIT ?", (*args, 1 if single else 256),
                           db=self._wdb).fetchall()
        if not found:
            return [], [], 0
        ids, n = [found[0][0]], found[0][1]
        for row_id, k in found[1:]:
            if n + k > self.max_lines_per_write:
                break
            ids.append(row_id)
            n += k
        cached = [self._recent.get(row_id) for row_id in ids]
        if None not in cached:
            return ids, [row[0] for row in cached if row is not None], n
        marks = ",".join("?" * len(ids))
        bodies = [b for (b,) in self._exec(f"SELECT body FROM spool WHERE id IN ({marks}) ORDER BY id", ids,
                                           db=self._wdb)]
        if len(bodies) != len(ids):  # dropped at the bound between the two reads: take again
            return self._take(single, after)
        return ids, bodies, n

    def _flush(self, force: bool) -> FlushResult:
        if not force and self._clock() < self.next_try:
            return FlushResult(0, self.pending_lines, False)
        if self.suspect_head:
            if self.head_check is not None and self._clock() - self._opened < self.head_settle_s:  # let the store make its newest writes searchable
                return FlushResult(0, self.pending_lines, True)
            try:
                check_head(self)
            except StoreUnavailable as exc:
                self.counters["write_failures"] += 1
                self.last_error = str(exc)
                self.next_try = self._clock() + self.backoff.next_delay()
                return FlushResult(0, self.pending_lines, False)
        written = 0
        single = False
        done: list[tuple[list[int], int]] = []  # written, delete pending (at most one write's worth of waiting)
        try:
            while True:
                ids, bodies, n = self._take(single, done[-1][0][-1] if done else None)
                if not ids:
                    self._delete(done, wait=True)
                    return FlushResult(written, 0, True)
                try:
                    self.writer.write(bodies)
                except StoreUnavailable as exc:
                    self.counters["write_failures"] += 1
                    self.last_error = str(exc)
                    self.next_try = self._clock() + self.backoff.next_delay()
                    self._delete(done, wait=True)
                    return FlushResult(written, self.pending_lines, False)
                except StoreRejected as exc:
                    self.counters["rejected_batches"] += 1
                    self._delete(done, wait=True)
                    if len(ids) > 1:  # find the bad row: one by one, then halves
                        single = True
                        continue
                    with self._mutex:
                        self._split_or_bury(ids[0], bodies[0].split("\n"), exc)
                    continue
                # deleted at once if no commit holds the spool; else after the next write at the latest, so
                # this write overlaps the commit's fsync (the exactly-once window stays one write long)
                self._delete(done, wait=bool(done))
                done.append((ids, n))
                self._delete(done, wait=False)
                self.backoff.reset()
                self.next_try = float("-inf")
                self.last_error = None
                written += n
                self.last_write_at = time.time()  # before the count: whoever sees the count sees this write's time
                self.counters["written_lines"] += n
        finally:
            self._delete(done, wait=True)

    def head(self, after: int | None = None) -> tuple[list[int], list[str], int]:
        """The oldest rows (above id ``after``): a request's worth of ids, bodies and their line count."""
        return self._take(False, after)

    @_locked
    def replace_rows(self, ids: Sequence[int], lines: Sequence[str]) -> None:
        """Rows ``ids`` (consecutive, oldest first) become one row of ``lines`` in the first one's place, or go."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                gone = self._db.execute(f"DELETE FROM spool WHERE id IN ({','.join('?' * len(ids))})", ids).rowcount
                if lines and gone == len(ids):  # (else the bound dropped them meanwhile: counted there)
                    self._db.execute("INSERT INTO spool (id, body, n, ts) VALUES (?, ?, ?, ?)",
                                     (ids[0], "\n".join(lines), len(lines), time.time()))
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: {exc}") from exc
        self._forget(ids)
        self._pending = int(self._db.execute("SELECT COALESCE(SUM(n), 0) FROM spool").fetchone()[0])

    def _delete(self, done: list[tuple[list[int], int]], *, wait: bool) -> None:
        """Delete written rows (``done``, emptied) in one statement; without ``wait``, only if the mutex is
        free right now (a commit holds it through its fsync)."""
        if not done or not self._mutex.acquire(blocking=wait):
            return
        try:
            ids = [row_id for row_ids, _ in done for row_id in row_ids]
            n = sum(k for _, k in done)
            done.clear()
            gone = self._exec(f"DELETE FROM spool WHERE id IN ({','.join('?' * len(ids))})", ids,
                              db=self._wdb).rowcount
            self._forget(ids)
            if gone == len(ids):
                self._pending -= n
            else:  # some were dropped at the bound meanwhile (counted there): recount
                self._pending = int(self._exec("SELECT COALESCE(SUM(n), 0) FROM spool").fetchone()[0])
        finally:
            self._mutex.release()

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
            self._pending -= 1
        self._forget((row_id,))

    # ---- reporting ---------------------------------------------------------------------------------------------

    @property
    def pending_lines(self) -> int:
        return self._pending

    @property
    def seen_keys(self) -> int:
        return int(self._exec("SELECT COUNT(*) FROM seen").fetchone()[0])

    @property
    def pending_batches(self) -> int:
        return int(self._exec("SELECT COUNT(*) FROM spool").fetchone()[0])

    @_locked
    def dead(self) -> list[tuple[str, str]]:
        return [(line, reason) for line, reason in self._exec("SELECT line, reason FROM dead ORDER BY id")]
