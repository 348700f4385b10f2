"""The outbox's bounds: deleting rows, dropping items past their stream's age, evicting by stream rank over the
byte bound, and counting every drop per ``(stream, reason)``. A mixin of ``gateway.outbox.Outbox`` (split from it
so that module stays one sitting's read); every method runs inside the outbox's transaction and mutex."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from gateway.outbox_types import StreamPolicy


class Bounds:
    """Needs from the outbox: ``policies``, ``max_bytes``, ``_bytes``, ``_depth`` and ``_inflight``."""

    policies: dict[str, StreamPolicy]
    max_bytes: int
    _bytes: int
    _depth: int
    _inflight: set[int]
    _last_expire: float

    def _count_drop(self, db: sqlite3.Connection, stream: str, reason: str, n: int) -> None:
        db.execute("INSERT INTO dropped (stream, reason, n) VALUES (?, ?, ?) "
                   "ON CONFLICT (stream, reason) DO UPDATE SET n = n + excluded.n", (stream, reason, n))

    def _delete(self, db: sqlite3.Connection, ids: Sequence[int]) -> tuple[int, int]:
        """Delete rows; return (count, bytes) actually deleted."""
        n = size = 0
        for i in range(0, len(ids), 500):
            chunk = list(ids[i:i + 500])
            marks = ",".join("?" * len(chunk))
            for (s,) in db.execute(f"DELETE FROM items WHERE id IN ({marks}) RETURNING size", chunk):
                n += 1
                size += s
        self._bytes -= size
        self._depth -= n
        self._inflight.difference_update(ids)
        return n, size

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        """Drop items past their stream's max age. Items are scanned oldest first per stream (ids grow with
        time), so the scan stops at the first young item instead of reading the whole table."""
        self._last_expire = now
        for stream, pol in self.policies.items():
            if pol.max_age_s is None:
                continue
            cutoff = now - pol.max_age_s
            after = 0
            while True:
                rows = db.execute("SELECT id, ts FROM items WHERE stream = ? AND id > ? ORDER BY id LIMIT 256",
                                  (stream, after)).fetchall()
                old = [item_id for item_id, ts in rows if ts < cutoff]
                if old:
                    n, _ = self._delete(db, old)
                    self._count_drop(db, stream, "age", n)
                if len(rows) < 256 or rows[-1][1] >= cutoff:
                    break
                after = rows[-1][0]

    def _evict(self, db: sqlite3.Connection) -> None:
        by_rank: dict[int, list[str]] = {}
        for stream, pol in self.policies.items():
            by_rank.setdefault(pol.rank, []).append(stream)
        for rank in sorted(by_rank):
            streams = by_rank[rank]
            marks = ",".join("?" * len(streams))
            after = 0
            while self._bytes > self.max_bytes:
                rows = db.execute(f"SELECT id, stream, size FROM items WHERE stream IN ({marks}) AND id > ? "
                                  "ORDER BY id LIMIT 256", (*streams, after)).fetchall()
                if not rows:
                    break
                after = rows[-1][0]
                victims: list[tuple[int, str]] = []
                excess = self._bytes - self.max_bytes
                for item_id, stream, size in rows:
                    if excess <= 0:
                        break
                    if item_id in self._inflight:
                        continue
                    victims.append((item_id, stream))
                    excess -= size
                self._delete(db, [v[0] for v in victims])
                per_stream: dict[str, int] = {}
                for _, stream in victims:
                    per_stream[stream] = per_stream.get(stream, 0) + 1
                for stream, n in per_stream.items():
                    self._count_drop(db, stream, "overflow", n)
            if self._bytes <= self.max_bytes:
                return
