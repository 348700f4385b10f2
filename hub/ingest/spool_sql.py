"""The spool's commit in a few statements, whatever the number of batches in it (hub/ingest/spool.py).

Every statement gives up the GIL while SQLite runs it and must win it back from the hub's MQTT thread, which
parses at full speed while a backlog arrives; winning it back can take up to the interpreter's switch interval
(5 ms). One ``INSERT`` per telemetry batch's key (448 of them in a 44,800-line commit) held the spool's mutex for
~0.5 s, and the store writer, which needs that mutex to delete what it wrote, waited for it: the writer stood
still for a third of the hub phase in ``bench.ingest`` (docs/benchmarks.md, issue 12, tenth session). Here a
commit's keys are looked up and inserted with one statement per ``KEYS_PER_STATEMENT`` keys, and its rows with
one multi-row ``INSERT``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

KEYS_PER_STATEMENT = 4_000  # 8,000 variables a statement (SQLite allows 32,766 since 3.32; Debian 12 has 3.40)
ROWS_PER_STATEMENT = 1_000  # spool rows (3 variables each)


def seen_of(db: sqlite3.Connection, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` the ``seen`` table holds already."""
    out: set[str] = set()
    for i in range(0, len(keys), KEYS_PER_STATEMENT):
        part = list(keys[i:i + KEYS_PER_STATEMENT])
        out.update(k for (k,) in db.execute(f"SELECT key FROM seen WHERE key IN ({','.join('?' * len(part))})",
                                            part))
    return out


def add_seen(db: sqlite3.Connection, keys: Sequence[str], now: float) -> None:
    for i in range(0, len(keys), KEYS_PER_STATEMENT):
        part = keys[i:i + KEYS_PER_STATEMENT]
        db.execute(f"INSERT OR IGNORE INTO seen (key, ts) VALUES {','.join(['(?, ?)'] * len(part))}",
                   [v for k in part for v in (k, now)])


def insert_rows(db: sqlite3.Connection, rows: Sequence[tuple[str, int]], now: float) -> list[int]:
    """Insert spool rows (body, line count), oldest first; returns their ids. In one statement the rows take
    consecutive ids (the table is AUTOINCREMENT, the transaction holds the write lock): the last one's and
    the ones before it. Checked: a count of the rows in that id range that must be all of them."""
    ids: list[int] = []
    for i in range(0, len(rows), ROWS_PER_STATEMENT):
        part = rows[i:i + ROWS_PER_STATEMENT]
        last = db.execute(f"INSERT INTO spool (body, n, ts) VALUES {','.join(['(?, ?, ?)'] * len(part))}",
                          [v for body, n in part for v in (body, n, now)]).lastrowid
        first = int(last or 0) - len(part) + 1
        (found,) = db.execute("SELECT COUNT(*) FROM spool WHERE id BETWEEN ? AND ?", (first, last)).fetchone()
        if found != len(part):  # never seen: SQLite hands out ids one above the largest ever, in row order
            raise sqlite3.IntegrityError(f"spool rows did not get consecutive ids ({found} of {len(part)})")
        ids += range(first, last + 1)
    return ids
