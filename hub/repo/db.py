"""One small database interface over the two backends of hub state: SQLite (WAL, one file per component, the
embedded default) and PostgreSQL (psycopg 3 with a connection pool, one database for every component).

Stores write portable SQL: ``?`` placeholders, ``INSERT ... ON CONFLICT (...) DO UPDATE/NOTHING`` (both engines
speak it), and ``json_text``/``json_true`` for the few JSON look-ups. Every driver error becomes a ``StoreError``
(a unique-key violation a ``Conflict``) whose text names the store and where it lives; a PostgreSQL URL is shown
without its password.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from hub.errors import StoreError

Args = Sequence[Any]


class Conflict(StoreError):
    """A unique or primary key already holds that value."""


class Tx:
    """Statements inside one transaction (``Database.transaction``)."""

    def query(self, sql: str, args: Args = ()) -> list[tuple]:  # pragma: no cover - abstract
        raise NotImplementedError

    def execute(self, sql: str, args: Args = ()) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Args]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Args]) -> None:
        """Plain inserts of new rows (no upsert: a row whose key exists fails the statement with ``Conflict``).
        PostgreSQL: one ``COPY``, several times faster than ``executemany`` for a dispatch's command rows."""
        self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                         rows)

    def upsert_many(self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Args]) -> None:
        """Insert or replace rows by ``key`` (each key at most once in ``rows``). PostgreSQL: a big batch goes
        through a staging table (one ``COPY``, then one ``INSERT ... SELECT ... ON CONFLICT``)."""
        self.executemany(upsert_sql(table, columns, key), rows)


class Database(Tx):
    """``query``/``execute``/``executemany`` each run alone (autocommit); ``transaction()`` groups statements."""

    dialect: str
    where: str  # a file path, or the PostgreSQL URL without a password
    what: str  # "the user store", ... (for error messages)

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[Tx]:  # pragma: no cover - abstract
        """One transaction. ``lock`` names a writer lock held to its end (SQLite: BEGIN IMMEDIATE; PostgreSQL:
        a transaction-scoped advisory lock), so appends from several processes stay one line."""
        raise NotImplementedError
        yield

    def json_text(self, column: str, key: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def json_true(self, column: str, key: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _error(self, exc: Exception) -> StoreError:
        cls = Conflict if _is_conflict(exc) else StoreError
        return cls(f"cannot use {self.what} {self.where}: {exc}".strip())


def _is_conflict(exc: Exception) -> bool:
    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a hub dependency
        return False
    return isinstance(exc, psycopg.errors.UniqueViolation)


# ---------------------------------------------------------------------------------------------------- SQLite
class _SqliteTx(Tx):
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    def query(self, sql: str, args: Args = ()) -> list[tuple]:
        return self.db.conn.execute(sql, args).fetchall()

    def execute(self, sql: str, args: Args = ()) -> int:
        return self.db.conn.execute(sql, args).rowcount

    def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        self.db.conn.executemany(sql, rows)


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: Path, what: str, *, conn: sqlite3.Connection | None = None) -> None:
        self.path, self.where, self.what = path, str(path), what
        if conn is not None:  # an open connection handed over (tests, older callers)
            self.conn = conn
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {what} {path}: {exc}") from None

    def query(self, sql: str, args: Args = ()) -> list[tuple]:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def execute(self, sql: str, args: Args = ()) -> int:
        try:
            return self.conn.execute(sql, args).rowcount
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        try:
            self.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def executescript(self, script: str) -> None:
        try:
            self.conn.executescript(script)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[Tx]:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            yield _SqliteTx(self)
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from None
            raise

    def data_version(self) -> int:
        """Changes committed by other connections since this one opened (SQLite's ``PRAGMA data_version``)."""
        return int(self.query("PRAGMA data_version")[0][0])

    def json_text(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def json_true(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.{key}')"

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------------------------------- PostgreSQL
@lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """Portable SQL -> psycopg's: ``?`` becomes ``%s`` and a literal ``%`` is doubled."""
    return sql.replace("%", "%%").replace("?", "%s")


STAGE_FROM = 100  # PostgreSQL: an upsert of this many rows or more goes through a staging table (measured on this
# machine, 2,000 device rows of a city's phase: 60-130 ms that way against 130-250 ms for executemany, at load 10)


def on_conflict_update(columns: Sequence[str], key: Sequence[str]) -> str:
    """``ON CONFLICT (key) DO UPDATE SET`` every column not in the key (SQLite and PostgreSQL alike)."""
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"


def upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """Portable ``INSERT ... ON CONFLICT (key) DO UPDATE`` of ``columns`` (every column not in the key)."""
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))}) "
            + on_conflict_update(columns, key))


def lock_id(name: str) -> int:
    """A stable 32-bit advisory lock key for a lock name."""
    return zlib.crc32(f"dozor:{name}".encode())


class _PgTx(Tx):
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def query(self, sql: str, args: Args = ()) -> list[tuple]:
        cur = self.conn.execute(pg_sql(sql), tuple(args))
        return cur.fetchall() if cur.description else []

    def execute(self, sql: str, args: Args = ()) -> int:
        return self.conn.execute(pg_sql(sql), tuple(args)).rowcount

    def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(pg_sql(sql), [tuple(r) for r in rows])

    def insert_many(self, table: str, columns: Sequence[str], rows: Sequence[Args]) -> None:
        if rows:
            with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def upsert_many(self, table: str, columns: Sequence[str], key: Sequence[str], rows: Sequence[Args]) -> None:
        if len(rows) < STAGE_FROM:
            self.executemany(upsert_sql(table, columns, key), rows)
            return
        # the staging table is this connection's own (TEMP), emptied at every commit; created once per connection
        stage, cols = f"stage_{table}", ", ".join(columns)
        self.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS")
        self.insert_many(stage, columns, rows)
        self.conn.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage} "
                          + on_conflict_update(columns, key))


class PostgresDatabase(Database):
    """A view of the shared pool (``hub.repo.backend.PgPool``) for one component of hub state."""

    dialect = "postgres"

    def __init__(self, pool: Any, where: str, what: str, on_close: Any = None) -> None:
        self.pool, self.where, self.what = pool, where, what
        self._on_close = on_close

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        import psycopg
        import psycopg_pool

        try:
            with self.pool.connection() as conn:
                yield conn
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise self._error(exc) from None

    def query(self, sql: str, args: Args = ()) -> list[tuple]:
        with self._conn() as conn:
            return _PgTx(conn).query(sql, args)

    def execute(self, sql: str, args: Args = ()) -> int:
        with self._conn() as conn:
            return _PgTx(conn).execute(sql, args)

    def executemany(self, sql: str, rows: Sequence[Args]) -> None:
        with self._conn() as conn, conn.transaction():
            _PgTx(conn).executemany(sql, rows)

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[Tx]:
        with self._conn() as conn, conn.transaction():
            if lock is not None:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_id(lock),))
            yield _PgTx(conn)

    def json_text(self, column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')"

    def json_true(self, column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')::boolean"

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
            self._on_close = None
