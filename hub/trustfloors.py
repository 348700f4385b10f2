"""Replay floors on their way to the trust store, off the hub's message loop.

Every verified gateway message moves its gateway's replay floor (``contract.signed.ReplayGuard``); the hub
persists it so a restarted or newly leading hub still refuses what it had already seen. Each write used to be
one autocommit statement on the message loop, for a birth or will at once and for a heartbeat or ack at most
every ``FLOOR_EVERY_S`` per gateway: a city of 2,000 gateways made that ~200 statements a second, and on
PostgreSQL each is a round trip to another process (measured in bench.city: 476 of them, 677 ms of the leader's
loop, inside one 2,000-gateway alert's dispatch of 1.3 s).

``Floors`` keeps the latest snapshot per gateway, taken on the loop when the message is admitted (so a write
never reads a guard while the loop changes it); ``GatewayTrust.run`` writes what is due every
``FLOOR_WRITE_S`` in one transaction, in a worker thread (PostgreSQL; SQLite's on the loop). Births and wills are due at the next write (before:
at once), heartbeats and acks as before at most every ``FLOOR_EVERY_S``. One write is in flight at a time, so
a gateway's floors reach the database in the order they were taken; a failed write puts its snapshots back
unless a newer one was taken meanwhile.

What a kill -9 can cost: the floors of the last ``FLOOR_WRITE_S`` (plus one write), on top of the up to
``FLOOR_EVERY_S`` a heartbeat floor already waited. A message from that window replayed to the next hub passes
the replay check once more (its signature must still be the gateway's); a gateway's retained birth is accepted
either way (newer than the persisted floor, or the very birth the floor names).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hub.errors import StoreError

log = logging.getLogger(__name__)
FLOOR_EVERY_S = 10.0  # a heartbeat or ack floor is taken at most this often per gateway (births and wills always)
FLOOR_WRITE_S = 0.5  # floors taken are written at most this long after

Row = tuple[str, int, dict]  # gateway, enrollment epoch, floor document


class Floors:
    def __init__(self, write: Callable[[list[Row]], None], *, threaded: bool = True) -> None:
        self.write = write  # (gateway, epoch, doc) rows in one transaction: TrustStore.put_floors
        self.threaded = threaded  # False: written on the loop (SQLite's connection is the loop's)
        self.due: dict[str, Row] = {}
        self.written = 0  # rows written (for tests and the curious)

    def take(self, gateway: str, epoch: int, doc: dict) -> None:
        self.due[gateway] = (gateway, epoch, doc)

    def _swap(self) -> list[Row]:
        rows, self.due = list(self.due.values()), {}
        return rows

    def _put_back(self, rows: list[Row]) -> None:
        for row in rows:
            self.due.setdefault(row[0], row)  # a snapshot taken since is newer: it stays

    async def save(self) -> int:
        """Write what is due, in a worker thread; returns how many rows. A store error is logged and the rows
        wait for the next call."""
        rows = self._swap()
        if not rows:
            return 0
        try:
            if self.threaded:
                await asyncio.to_thread(self.write, rows)
            else:
                self.write(rows)
        except StoreError as exc:
            self._put_back(rows)
            log.error("cannot persist %d gateway replay floors (kept for the next write): %s", len(rows), exc)
            return 0
        except BaseException:
            self._put_back(rows)
            raise
        self.written += len(rows)
        return len(rows)

    def save_now(self) -> int:
        """Write what is due here and now (a clean shutdown)."""
        rows = self._swap()
        if rows:
            try:
                self.write(rows)
            except StoreError as exc:
                log.error("cannot persist %d gateway replay floors at shutdown: %s", len(rows), exc)
                return 0
        self.written += len(rows)
        return len(rows)
