"""A named lease with fencing tokens in the hub state database: the building block for "exactly one alert leader"
among several hub instances (issue 14 §2).

``acquire()`` takes the lease if it is free or expired, or renews it if this holder has it. Time is the database
server's clock, so hubs with skewed clocks agree on expiry. Every change of holder (and every re-acquisition after
an expiry) increments ``token``: a fencing token that a receiver can compare, so a writer that lost the lease can
be told apart from the one that holds it. ``valid()`` is the holder's own check before it acts: it trusts the
lease only until ``ttl_s - margin_s`` after the moment it *asked* (a monotonic clock, which keeps running while the
process is paused), so a hub stopped with SIGSTOP and continued after its lease expired sees itself fenced before
it sends anything, and stays fenced until ``acquire()`` succeeds again (with a new token if another hub led in
between). ``check(tx)`` fences a database write: inside a transaction it fails unless this holder still has this
token and the lease has not expired.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hub.errors import StoreError
from hub.repo.db import Database, Tx

NOW = {"sqlite": "((julianday('now') - 2440587.5) * 86400.0)", "postgres": "extract(epoch from clock_timestamp())"}


class Fenced(StoreError):
    """This holder no longer holds the lease (or never did): it must not act as the leader."""


class Lease:
    def __init__(self, db: Database, name: str, holder: str, *, ttl_s: float = 5.0, margin_s: float | None = None,
                 mono: Callable[[], float] = time.monotonic) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.db, self.name, self.holder, self.ttl_s = db, name, holder, ttl_s
        self.margin_s = ttl_s / 5 if margin_s is None else margin_s
        self.mono = mono
        self.token: int | None = None
        self._valid_until = float("-inf")
        self._now = NOW[db.dialect]

    def acquire(self) -> bool:
        """Take or renew the lease; True if this holder has it now (``token`` says which term)."""
        asked = self.mono()
        now = self._now
        rows = self.db.query(
            f"INSERT INTO leases (name, holder, token, expires) VALUES (?, ?, 1, {now} + ?) "
            "ON CONFLICT (name) DO UPDATE SET "
            f"token = CASE WHEN leases.holder = excluded.holder AND leases.expires > {now} THEN leases.token "
            f"ELSE leases.token + 1 END, holder = excluded.holder, expires = {now} + ? "
            f"WHERE leases.holder = excluded.holder OR leases.expires <= {now} RETURNING token",
            (self.name, self.holder, self.ttl_s, self.ttl_s))  # the expiry counts from the update (after any wait)
        if not rows:
            self.token, self._valid_until = None, float("-inf")
            return False
        self.token = int(rows[0][0])
        self._valid_until = asked + self.ttl_s - self.margin_s
        return True

    def valid(self) -> bool:
        """True while this holder may act as the leader (checked right before each action)."""
        return self.token is not None and self.mono() < self._valid_until

    def check(self, tx: Tx) -> None:
        """Fence a write inside ``tx``: raises ``Fenced`` unless this holder still has the lease with its token."""
        # PostgreSQL: FOR SHARE holds the lease row until this transaction ends, so a takeover waits for the write
        # to commit or abort (never a write under the old term after the new one); a writer paused mid-transaction
        # is aborted by the server's idle_in_transaction_session_timeout (hub.repo.backend). SQLite: the
        # transaction is BEGIN IMMEDIATE, the only writer.
        share = " FOR SHARE" if self.db.dialect == "postgres" else ""
        if self.token is None or not tx.query(
                f"SELECT 1 FROM leases WHERE name = ? AND holder = ? AND token = ? AND expires > {self._now}{share}",
                (self.name, self.holder, self.token)):
            raise Fenced(f"lease {self.name!r}: {self.holder} no longer holds term {self.token}")

    def release(self) -> None:
        """Give the lease up at once (a clean shutdown): another holder need not wait for the expiry."""
        if self.token is not None:
            self.db.execute(f"UPDATE leases SET expires = {self._now} - 1 WHERE name = ? AND holder = ? AND token = ?",
                            (self.name, self.holder, self.token))
        self.token, self._valid_until = None, float("-inf")

    def current(self) -> dict | None:
        """Who holds the lease, with which token, and for how many more seconds (negative: expired)."""
        rows = self.db.query(f"SELECT holder, token, expires - {self._now} FROM leases WHERE name = ?", (self.name,))
        return {"holder": rows[0][0], "token": int(rows[0][1]), "expires_in_s": float(rows[0][2])} if rows else None
