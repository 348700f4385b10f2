"""The gateway outbox: durable store-and-forward between device drivers and the MQTT uplink.

One SQLite file in WAL mode, one connection, one writer: an exclusive lock file stops a second process
and a mutex serialises callers inside the process (so a worker thread may run the blocking fsyncs).
An item leaves the outbox only when ``ack(ids)`` is called, which the uplink does after the broker's
PUBACK. After a crash (kill -9, power loss with ``synchronous=FULL``) every item whose ``put`` returned
is still there; in-flight items are simply sent again (at-least-once; the hub de-duplicates by id/seq).

Bounds: total bytes (``max_bytes``) and age (``max_age_s``, per stream). When a put goes over the byte
bound, items are evicted by stream rank, lowest first, oldest first: routine telemetry (rank 0) goes
before events (rank 1), which go before acks (rank 2). Items handed out by ``batch`` and not yet acked
are not evicted. Everything dropped is counted per ``(stream, reason)``, and the counts are persisted.

Lanes: ``Lane.PRIORITY`` (alert acks, alarm events) is always returned by ``batch`` before
``Lane.NORMAL``. ``TokenBucket`` rate-limits the normal-lane drain after a reconnect; the priority lane
is never throttled. There is no MQTT code here.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from contract.models import OutboxStats
from gateway.errors import GatewayError
from gateway.outbox_bounds import Bounds
from gateway.outbox_types import DEFAULT_POLICIES, SCHEMA, Item, Lane, StreamPolicy, TokenBucket

__all__ = ["DEFAULT_POLICIES", "SCHEMA", "Item", "Lane", "Outbox", "OutboxError", "StreamPolicy", "TokenBucket"]


class OutboxError(GatewayError):
    """The outbox could not store or read items (disk, lock, misuse)."""


def _locked(method):
    """Serialise public methods: callers may use the outbox from a worker thread (``asyncio.to_thread``)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._mutex:
            return method(self, *args, **kwargs)
    return wrapper


class Outbox(Bounds):
    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = 64 * 1024 * 1024,
                 policies: dict[str, StreamPolicy] | None = None, synchronous: str = "FULL",
                 clock: Callable[[], float] = time.time, expire_every_s: float = 1.0) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise OutboxError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.policies = dict(policies or DEFAULT_POLICIES)
        self._clock = clock
        self._expire_every_s = expire_every_s
        self._last_expire = float("-inf")
        self._inflight: set[int] = set()
        self._mutex = threading.RLock()
        self._group_depth = 0  # > 0 inside group(): the operations share its one transaction
        self._group_marked: list[int] | None = None  # ids handed out inside the current group
        self._synchronous = synchronous.upper()
        self._lock_fd = self._take_lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.executescript(SCHEMA)
            self._bytes, self._depth = self._db.execute(
                "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM items").fetchone()
        except sqlite3.Error as exc:
            self._release_lock()
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def _take_lock(self) -> int:
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutboxError(f"outbox {self.path} is already open in another process (single writer)") from None
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    @_locked
    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._release_lock()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self):
        if self._group_depth:  # inside group(): its transaction, committed (one fsync) when the group ends
            yield self._db
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                self._bytes, self._depth = self._db.execute(
                    "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM items").fetchone()
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def group(self):
        """Several operations in ONE transaction, so one commit and one fsync (group commit)::

            with outbox.group():
                outbox.put_many(readings)
                items = outbox.batch(...)
                outbox.set_meta("telemetry", state)

        Everything in the group is durable together when it ends, or (on an exception) none of it is."""
        with self._mutex:
            marked: list[int] = []
            self._group_marked = marked
            try:
                with self._tx():
                    self._group_depth += 1
                    try:
                        yield self
                    finally:
                        self._group_depth -= 1
            except BaseException:
                self._inflight.difference_update(marked)  # handed out inside a group that never committed
                raise
            finally:
                self._group_marked = None

    # ---- writing -------------------------------------------------------------------------------------------

    def put(self, stream: str, topic: str, payload: bytes, *, lane: Lane = Lane.NORMAL) -> int:
        """Store one item durably; return its id. Raises OutboxError for an unknown stream or an item
        larger than the whole outbox (counted as dropped ``too_large``)."""
        return self.put_many([(stream, topic, payload, lane)])[0]

    @_locked
    def put_many(self, items: Iterable[tuple[str, str, bytes, Lane]]) -> list[int]:
        """Store several items in one transaction (one fsync)."""
        rows = []
        now = self._clock()
        for stream, topic, payload, lane in items:
            if stream not in self.policies:
                raise OutboxError(f"unknown outbox stream {stream!r}; known: {sorted(self.policies)}")
            size = len(payload) + len(topic.encode())
            if size > self.max_bytes:
                with self._tx() as db:
                    self._count_drop(db, stream, "too_large", 1)
                raise OutboxError(f"item of {size} bytes exceeds the outbox bound of {self.max_bytes}")
            rows.append((int(Lane(lane)), stream, topic, bytes(payload), size, now))
        ids: list[int] = []
        with self._tx() as db:
            for row in rows:
                cur = db.execute("INSERT INTO items (lane, stream, topic, payload, size, ts) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", row)
                ids.append(int(cur.lastrowid))
                self._bytes += row[4]
                self._depth += 1
            if now - self._last_expire >= self._expire_every_s:
                self._expire(db, now)
            if self._bytes > self.max_bytes:
                self._evict(db)
        return ids

    # ---- reading -------------------------------------------------------------------------------------------

    @_locked
    def batch(self, limit_bytes: int = 256 * 1024, limit_items: int = 500, *,
              lanes: Sequence[Lane] = (Lane.PRIORITY, Lane.NORMAL), stream: str | None = None,
              skip_stream: str | None = None, min_id: int = 0, max_id: int | None = None) -> list[Item]:
        """Items not yet in flight, priority lane first then oldest first, within the limits (at least one
        item if any is waiting). The returned items are in flight until ``ack`` or ``release``.
        ``stream``/``skip_stream`` select by stream (the uplink drains ``ack`` items itself, the telemetry
        drain skips them); ``min_id < id <= max_id`` selects live items or the backlog."""
        out: list[Item] = []
        used = 0
        wanted = sorted({int(Lane(x)) for x in lanes}, reverse=True)
        where, extra = "", []
        if stream is not None:
            where, extra = " AND stream = ?", [stream]
        elif skip_stream is not None:
            where, extra = " AND stream != ?", [skip_stream]
        if max_id is not None:
            where += " AND id <= ?"
            extra.append(max_id)
        try:
            for lane in wanted:
                after = min_id
                while len(out) < limit_items:
                    rows = self._db.execute(
                        "SELECT id, lane, stream, topic, payload, ts, size FROM items WHERE lane = ? AND id > ?"
                        f"{where} ORDER BY id LIMIT ?", (lane, after, *extra, limit_items + 64)).fetchall()
                    if not rows:
                        break
                    after = rows[-1][0]
                    for item_id, ln, stream, topic, payload, ts, size in rows:
                        if item_id in self._inflight:
                            continue
                        if out and (used + size > limit_bytes or len(out) >= limit_items):
                            return self._mark(out)
                        out.append(Item(item_id, Lane(ln), stream, topic, bytes(payload), ts))
                        used += size
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        return self._mark(out)

    @_locked
    def drain_batch(self, bucket: TokenBucket, limit_bytes: int = 256 * 1024, limit_items: int = 500) -> list[Item]:
        """What the uplink sends next: the whole priority lane (never throttled), then as many normal-lane
        items as ``bucket`` has whole tokens for (one token per item), within the limits."""
        out = self.batch(limit_bytes, limit_items, lanes=[Lane.PRIORITY], skip_stream="ack")
        room_items = min(limit_items - len(out), bucket.available())
        room_bytes = limit_bytes - sum(i.size for i in out)
        if room_items > 0 and room_bytes > 0:
            normal = self.batch(room_bytes, room_items, lanes=[Lane.NORMAL], skip_stream="ack")
            bucket.take(len(normal))
            out += normal
        return out

    def _mark(self, items: list[Item]) -> list[Item]:
        self._inflight.update(i.id for i in items)
        if self._group_marked is not None:
            self._group_marked.extend(i.id for i in items)
        return items

    @_locked
    def count(self, stream: str) -> int:
        """Items of one stream still stored (in flight or not)."""
        return int(self._db.execute("SELECT COUNT(*) FROM items WHERE stream = ?", (stream,)).fetchone()[0])

    @_locked
    def last_id(self) -> int:
        """The highest id stored so far (0 when empty): the boundary between backlog and live items."""
        return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM items").fetchone()[0])

    @_locked
    def ack(self, ids: Iterable[int], *, durable: bool = True, meta: tuple[str, bytes | None] | None = None,
            held: Sequence[tuple[str, str, bytes]] = ()) -> int:
        """The broker acknowledged these items: delete them (and set ``meta``, and keep ``held`` messages
        ``(key, topic, payload)`` until the hub's receipt, in the same transaction). Returns how many were
        deleted. ``durable=False`` commits without an fsync of its own: after a power loss the items may come back
        (and are sent again, which the receiver de-duplicates); the next durable commit makes it durable too (the
        WAL is written in order)."""
        ids = list(ids)
        if not ids and meta is None and not held:
            return 0
        with self._relaxed(not durable), self._tx() as db:
            n, _ = self._delete(db, ids)
            if meta is not None:
                self._set_meta(db, *meta)
            if held:
                now = self._clock()
                db.executemany("INSERT OR REPLACE INTO held (key, topic, payload, ts) VALUES (?, ?, ?, ?)",
                               [(key, topic, bytes(payload), now) for key, topic, payload in held])
        return n

    @contextlib.contextmanager
    def _relaxed(self, relaxed: bool):
        """Commits inside without an fsync of their own (``synchronous=NORMAL``), unless in a group."""
        relaxed = relaxed and self._synchronous != "NORMAL" and not self._group_depth
        if relaxed:
            self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            if relaxed:
                self._db.execute(f"PRAGMA synchronous={self._synchronous}")

    @_locked
    def release_held(self, keys: Sequence[str]) -> None:
        """The hub's receipt came for these held messages (or they were given up): forget them (no fsync: a
        power cut may bring them back, and the hub de-duplicates what is then sent again)."""
        if keys:
            with self._relaxed(True), self._tx() as db:
                db.executemany("DELETE FROM held WHERE key = ?", [(k,) for k in keys])

    @_locked
    def held(self) -> list[tuple[str, str, bytes]]:
        """Messages still waiting for a receipt, oldest first (loaded into the receipt window at start)."""
        try:
            return [(k, t, bytes(p)) for k, t, p in self._db.execute(
                "SELECT key, topic, payload FROM held ORDER BY ts, rowid")]
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc

    @_locked
    def set_meta(self, key: str, value: bytes | None) -> None:
        """Store a small value (e.g. the telemetry drain's pending flush) durably, or delete it (None)."""
        with self._tx() as db:
            self._set_meta(db, key, value)

    @_locked
    def get_meta(self, key: str) -> bytes | None:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        return None if row is None else bytes(row[0])

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: bytes | None) -> None:
        if value is None:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                       "excluded.value", (key, bytes(value)))

    @_locked
    def release(self, ids: Iterable[int] | None = None) -> None:
        """Make in-flight items eligible again (the connection dropped before their PUBACK)."""
        if ids is None:
            self._inflight.clear()
        else:
            self._inflight.difference_update(ids)

    @_locked
    def expire(self) -> None:
        with self._tx() as db:
            self._expire(db, self._clock())

    # ---- reporting -----------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @_locked
    def dropped(self) -> dict[tuple[str, str], int]:
        """Dropped item counts by (stream, reason): reasons are ``overflow``, ``age`` and ``too_large``."""
        return {(s, r): n for s, r, n in self._db.execute("SELECT stream, reason, n FROM dropped")}

    def counters(self) -> dict[str, int]:
        """Flat counters for the heartbeat: ``outbox_dropped.<stream>.<reason>``."""
        return {f"outbox_dropped.{s}.{r}": n for (s, r), n in self.dropped().items()}

    @_locked
    def stats(self) -> OutboxStats:
        oldest = self._db.execute("SELECT MIN(ts) FROM items").fetchone()[0]
        age = max(0.0, self._clock() - oldest) if oldest is not None else 0.0
        return OutboxStats(depth=self._depth, bytes=self._bytes, oldest_age_s=age,
                           dropped=sum(self.dropped().values()))
