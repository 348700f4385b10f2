"""Where hub state lives: ``Backend.sqlite(state_dir)`` (one WAL file per component, the embedded default) or
``Backend.postgres(url, password=...)`` (one database, one connection pool shared by every store in a process).

``open(component)`` returns a ``Database`` for one component at its current schema version. SQLite files are
migrated when opened (an embedded hub just starts). A PostgreSQL schema is migrated only by ``migrate()``
(``dozor hub migrate``): a hub finding it behind refuses to start with a message that says so, and one finding
it ahead (a newer hub migrated it) refuses too. Migrations hold an advisory lock, so two deployers racing are
one after the other.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hub.errors import StoreError
from hub.repo.db import Database, PostgresDatabase, SqliteDatabase, lock_id
from hub.repo.schema import COMPONENTS, Component, ddl

MIGRATIONS_TABLE = ("CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT NOT NULL, version INTEGER NOT NULL,"
                    " name TEXT NOT NULL, applied REAL NOT NULL, PRIMARY KEY (component, version))")


def redact(url: str) -> str:
    """The URL without a password (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class _Pools:
    """One psycopg pool per (URL, password) in this process, closed when its last user closes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[tuple, list[Any]] = {}

    def acquire(self, key: tuple, make: Any) -> Any:
        with self._lock:
            entry = self._pools.get(key)
            if entry is None:
                entry = self._pools[key] = [make(), 0]
            entry[1] += 1
            return entry[0]

    def release(self, key: tuple) -> None:
        with self._lock:
            entry = self._pools.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                del self._pools[key]
                entry[0].close()


POOLS = _Pools()


@dataclass(frozen=True)
class Backend:
    kind: str  # "sqlite" | "postgres"
    state_dir: Path
    url: str = ""
    password: str | None = field(default=None, repr=False)
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout_s: float = 10.0
    idle_tx_timeout_s: float = 10.0

    @classmethod
    def sqlite(cls, state_dir: Path) -> Backend:
        return cls("sqlite", Path(state_dir))

    @classmethod
    def postgres(cls, url: str, *, password: str | None = None, state_dir: Path = Path("."), pool_min: int = 1,
                 pool_max: int = 10, connect_timeout_s: float = 10.0, idle_tx_timeout_s: float = 10.0) -> Backend:
        return cls("postgres", Path(state_dir), url, password, pool_min, pool_max, connect_timeout_s,
                   idle_tx_timeout_s)

    @property
    def where(self) -> str:
        return str(self.state_dir) if self.kind == "sqlite" else redact(self.url)

    def describe(self) -> dict:
        return {"backend": self.kind, "where": self.where}

    # ------------------------------------------------------------ opening
    def open(self, component: Component | str, *, path: Path | None = None) -> Database:
        comp = COMPONENTS[component] if isinstance(component, str) else component
        if self.kind == "sqlite":
            db = SqliteDatabase(path or self.state_dir / comp.file, comp.what)
            try:
                _migrate_sqlite(db, comp)
            except BaseException:
                db.close()
                raise
            return db
        db = self._pg(comp.what)
        try:
            have = _pg_versions(db).get(comp.name, 0)
        except BaseException:
            db.close()
            raise
        if have != comp.version:
            db.close()
            hint = ("run `dozor hub migrate --config <hub.toml>` first" if have < comp.version else
                    "a newer hub migrated it: run that version")
            raise StoreError(f"{comp.what} in {self.where} is at schema version {have}, this hub needs "
                             f"{comp.version}: {hint}")
        return db

    def _pg(self, what: str) -> PostgresDatabase:
        key = (self.url, self.password, self.pool_min, self.pool_max, self.idle_tx_timeout_s)
        pool = POOLS.acquire(key, self._make_pool)
        return PostgresDatabase(pool, self.where, what, on_close=lambda: POOLS.release(key))

    def _make_pool(self) -> Any:
        from psycopg_pool import ConnectionPool, PoolTimeout

        # A transaction left idle (a paused or wedged hub) is aborted by the server, so it cannot hold row locks
        # (the leader lease's, hub.repo.lease) for long; every hub transaction is a few short statements.
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": max(1, int(self.connect_timeout_s)),
                                  "options": "-c idle_in_transaction_session_timeout="
                                             f"{int(self.idle_tx_timeout_s * 1000)}"}
        if self.password is not None:
            kwargs["password"] = self.password
        pool = ConnectionPool(self.url, kwargs=kwargs, min_size=self.pool_min, max_size=self.pool_max,
                              timeout=self.connect_timeout_s, check=ConnectionPool.check_connection,
                              name="dozor-hub", open=False)
        try:
            pool.open(wait=True, timeout=self.connect_timeout_s)
        except PoolTimeout:
            pool.close()
            raise StoreError(f"cannot connect to PostgreSQL at {self.where} within {self.connect_timeout_s:g} s "
                             "(is it running? are [database] url and the password right?)") from None
        return pool

    # ------------------------------------------------------------ migrations
    def migrate(self) -> list[dict]:
        """Bring every component to its newest schema; returns what each went from and to."""
        out = []
        if self.kind == "sqlite":
            for comp in COMPONENTS.values():
                if comp.name == "push":
                    continue  # its file is [residents.webpush] subscriptions_db: migrated when the hub opens it
                db = SqliteDatabase(self.state_dir / comp.file, comp.what)
                try:
                    before = _sqlite_version(db, comp)
                    _migrate_sqlite(db, comp)
                    out.append(_report(comp, before))
                finally:
                    db.close()
            return out
        db = self._pg("the hub state database")
        try:
            import psycopg

            with db._conn() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id("migrate"),))
                conn.execute(MIGRATIONS_TABLE.replace("INTEGER", "BIGINT").replace("REAL", "DOUBLE PRECISION"))
                have = dict(conn.execute("SELECT component, max(version) FROM schema_migrations "
                                         "GROUP BY component").fetchall())
                for comp in COMPONENTS.values():
                    before = have.get(comp.name, 0)
                    for m in comp.migrations:
                        if m.version > before:
                            try:
                                conn.execute(ddl(m, "postgres").encode())
                            except psycopg.Error as exc:
                                raise StoreError(f"migration {comp.name} {m.version} ({m.name}) failed: {exc}") \
                                    from None
                            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s, %s)",
                                         (comp.name, m.version, m.name, time.time()))
                    out.append(_report(comp, before))
        finally:
            db.close()
        return out

    def status(self) -> list[dict]:
        """Each component's schema version here and the one this hub needs (nothing is changed)."""
        if self.kind == "sqlite":
            rows = []
            for comp in COMPONENTS.values():
                if comp.name == "push":
                    continue
                path = self.state_dir / comp.file
                have = 0
                if path.exists():
                    db = SqliteDatabase(path, comp.what)
                    try:
                        have = _sqlite_version(db, comp)
                    finally:
                        db.close()
                rows.append({"component": comp.name, "version": have, "needed": comp.version})
            return rows
        db = self._pg("the hub state database")
        try:
            have = _pg_versions(db)
        finally:
            db.close()
        return [{"component": c.name, "version": have.get(c.name, 0), "needed": c.version}
                for c in COMPONENTS.values()]


def adopt(conn: sqlite3.Connection, component: str) -> SqliteDatabase:
    """A ``Database`` over an already open SQLite connection, migrated to ``component``'s schema."""
    conn.isolation_level = None
    db = SqliteDatabase(Path("<connection>"), COMPONENTS[component].what, conn=conn)
    _migrate_sqlite(db, COMPONENTS[component])
    return db


def _report(comp: Component, before: int) -> dict:
    return {"component": comp.name, "from": before, "to": comp.version,
            "applied": [m.name for m in comp.migrations if m.version > before]}


def _pg_versions(db: PostgresDatabase) -> dict[str, int]:
    exists = db.query("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0]
    if not exists:
        return {}
    return dict(db.query("SELECT component, max(version) FROM schema_migrations GROUP BY component"))


def _sqlite_version(db: SqliteDatabase, comp: Component) -> int:
    db.execute(MIGRATIONS_TABLE)
    return db.query("SELECT coalesce(max(version), 0) FROM schema_migrations WHERE component = ?", (comp.name,))[0][0]


def _migrate_sqlite(db: SqliteDatabase, comp: Component) -> None:
    have = _sqlite_version(db, comp)
    for m in comp.migrations:
        if m.version <= have:
            continue
        name = m.name.replace("'", "''")
        try:
            db.executescript(f"BEGIN IMMEDIATE;\n{ddl(m, 'sqlite')}\nINSERT INTO schema_migrations VALUES "
                             f"('{comp.name}', {m.version}, '{name}', {time.time()!r});\nCOMMIT;")
        except StoreError as exc:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise StoreError(f"migration {comp.name} {m.version} ({m.name}) of {db.where} failed: {exc}") from None
