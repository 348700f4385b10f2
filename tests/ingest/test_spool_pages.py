"""The spool's SQLite page size: a new spool file uses 64 kB pages (its rows are whole request bodies, so fewer
overflow pages to write, free and checkpoint); a spool file made before keeps its 4 kB pages and its rows."""

from __future__ import annotations

import sqlite3

from hub.ingest.spool import PAGE_SIZE, SCHEMA, Spool


class Taken:
    name = "taken"

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, bodies) -> None:
        self.lines += [ln for body in bodies for ln in body.split("\n")]

    def close(self) -> None:
        pass


def page_size(path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA page_size").fetchone()[0])


def lines(k: int) -> list[str]:
    return [f"m,device=d{k} v={i} {1_700_000_000_000 + i}" for i in range(700)]


def test_a_new_spool_uses_large_pages_and_an_old_one_keeps_its_own(tmp_path):
    store = Taken()
    with Spool(tmp_path / "new.db", store) as spool:
        spool.put_groups([("t:gw:1:0", lines(0))])
    assert PAGE_SIZE == 65536 and page_size(tmp_path / "new.db") == PAGE_SIZE

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as db:  # a spool written by an earlier hub: 4 kB pages, two rows pending
        db.execute("PRAGMA page_size=4096")
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO spool (body, n, ts) VALUES (?, ?, 0)",
                       [("\n".join(lines(k)), 700) for k in (1, 2)])
    with Spool(old, store) as spool:
        assert spool.pending_lines == 1400
        spool.put_groups([("t:gw:1:3", lines(3))])
        assert spool.flush().written_lines == 2100 and spool.pending_lines == 0
    assert page_size(old) == 4096
    assert store.lines == lines(1) + lines(2) + lines(3)  # in order, each once
