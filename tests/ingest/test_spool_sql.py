"""hub/ingest/spool_sql.py: a commit's keys and rows in a few statements. What must not change: a key seen before
(in an earlier commit, after a reopen, or earlier in the same commit) is skipped; every row gets its own id, in
order, and the writer sends each row's own body; chunking past one statement's limits loses nothing."""

from __future__ import annotations

import sqlite3

from hub.ingest import spool_sql
from hub.ingest.spool import Spool


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def write(self, bodies):
        self.bodies.extend(bodies)


def lines_of(bodies: list[str]) -> list[str]:
    return [line for body in bodies for line in body.split("\n")]


def test_keys_across_commits_a_reopen_and_within_one_commit_are_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_sql, "KEYS_PER_STATEMENT", 7)  # many statements per commit
    out = Recorder()
    with Spool(tmp_path / "s.db", out) as spool:
        groups = [(f"k{i}", [f"m,g=a v={i} {i}"]) for i in range(50)]
        assert spool.put_groups(groups + [("k3", ["m,g=a v=999 3"])]) == 1  # the same key again in one commit
        assert spool.put_groups(groups[10:20] + [(None, ["m,g=b v=1 1"]), ("k50", ["m,g=a v=50 50"])]) == 10
        spool.flush()
    with Spool(tmp_path / "s.db", out) as spool:  # the seen table is on disk
        assert spool.put_groups([("k49", ["m,g=a v=49 49"]), ("k51", ["m,g=a v=51 51"])]) == 1
        spool.flush()
    got = lines_of(out.bodies)
    assert got == [f"m,g=a v={i} {i}" for i in range(50)] + ["m,g=b v=1 1", "m,g=a v=50 50", "m,g=a v=51 51"]


def test_many_rows_in_one_commit_keep_their_order_and_bodies(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_sql, "ROWS_PER_STATEMENT", 3)
    out = Recorder()
    with Spool(tmp_path / "s.db", out, max_lines_per_write=2) as spool:  # 2 lines a row: 25 rows, 9 statements
        lines = [f"m,g=a v={i} {i}" for i in range(50)]
        spool.put_groups([(None, lines)])
        assert spool.pending_lines == 50
        spool.flush()
        assert spool.pending_lines == 0
    assert lines_of(out.bodies) == lines


def test_insert_rows_returns_the_ids_the_rows_got(tmp_path):
    db = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    db.execute("CREATE TABLE spool (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, n INTEGER, ts REAL)")
    db.execute("INSERT INTO spool (body, n, ts) VALUES ('old', 1, 0)")
    db.execute("DELETE FROM spool")  # AUTOINCREMENT: the next ids are above the deleted one, never reused
    db.execute("BEGIN IMMEDIATE")
    ids = spool_sql.insert_rows(db, [(f"b{i}", i) for i in range(2500)], 1.0)
    db.execute("COMMIT")
    assert ids == list(range(2, 2502))
    assert [r for r in db.execute("SELECT id, body FROM spool ORDER BY id")] == [(i + 2, f"b{i}") for i in range(2500)]
