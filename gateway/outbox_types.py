"""What the outbox stores and how its drain is paced: lanes, per-stream eviction policies, items, the SQLite
schema, and the token bucket that rate-limits the normal lane after a reconnect (``gateway.outbox`` re-exports
them all)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum


class Lane(IntEnum):
    NORMAL = 0
    PRIORITY = 1


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    rank: int  # lower ranks are evicted first when the byte bound is hit
    max_age_s: float | None  # None: only the byte bound applies


DEFAULT_POLICIES: dict[str, StreamPolicy] = {
    "telemetry": StreamPolicy(rank=0, max_age_s=7 * 86400.0),
    "health": StreamPolicy(rank=0, max_age_s=86400.0),
    "event": StreamPolicy(rank=1, max_age_s=30 * 86400.0),
    "ack": StreamPolicy(rank=2, max_age_s=None),
}


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    lane: Lane
    stream: str
    topic: str
    payload: bytes
    ts: float

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.topic.encode())


SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    lane INTEGER NOT NULL,
    stream TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_lane ON items (lane DESC, id);
CREATE INDEX IF NOT EXISTS items_by_stream ON items (stream, id);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dropped (
    stream TEXT NOT NULL,
    reason TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (stream, reason)
);
CREATE TABLE IF NOT EXISTS held (  -- PUBACKed, waiting for the hub's receipt (gateway/receipts.py)
    key TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    ts REAL NOT NULL
);
"""



class TokenBucket:
    """Token bucket: ``rate`` tokens per second, at most ``burst`` saved up. Used to pace the normal-lane
    drain after a reconnect (tokens = messages or bytes, the caller decides)."""

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._t = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
        self._t = now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if available now."""
        self._refill()
        if n <= self._tokens:
            self._tokens -= n
            return True
        return False

    def available(self) -> int:
        """Whole tokens available now (e.g. how many messages may go)."""
        self._refill()
        return int(self._tokens)

    def wait_s(self, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens are available (0 if now); ``n`` above ``burst`` waits for ``burst``."""
        self._refill()
        need = min(n, self.burst) - self._tokens
        return max(0.0, need / self.rate)
