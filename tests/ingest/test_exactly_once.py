"""Exactly once into the store: the spool records each batch's stable key in the same transaction as its lines,
so a batch redelivered after a hub kill -9 (spooled, PUBACK not yet sent) is skipped, across a reopen of the
SQLite file. Counted as RAW samples in a real VictoriaMetrics (which keeps duplicate samples)."""

from __future__ import annotations

import threading
import time

from hub.ingest import Ingest, Spool, TargetConfig, make_writer
from hub.ingest import spool as spool_module
from hub.ingest.spool import Spool as SpoolClass
from tests.telemetry.test_store_integration import telemetry


def raw_samples(vm, match: str) -> int:
    vm.flush()
    return sum(len(s["timestamps"]) for s in vm.export(match))


def eventually_raw(vm, match: str, want: int, limit_s: float = 20.0) -> int:
    deadline = time.monotonic() + limit_s
    got = raw_samples(vm, match)
    while got < want and time.monotonic() < deadline:
        time.sleep(0.2)
        got = raw_samples(vm, match)
    return got


def test_a_redelivered_batch_is_stored_once_across_a_restart(victoria, tmp_path):
    gw = "gw-once"
    target = TargetConfig("v2", victoria.url, database="dozor", org="dozor", token="t")
    batches = [telemetry(gw, seq, 10) for seq in range(3)]
    first = Ingest()
    groups = [(f"t:{gw}:1:{seq}", first.lines_for([b])) for seq, b in enumerate(batches)]
    with Spool(tmp_path / "spool.db", make_writer(target)) as spool:
        assert spool.put_groups(groups) == 0
        assert spool.flush().written_lines == sum(len(lines) for _, lines in groups)
    # the hub died before the PUBACKs: the broker redelivers all three to a fresh process
    again = Ingest()
    with Spool(tmp_path / "spool.db", make_writer(target)) as spool:
        redelivered = [(f"t:{gw}:1:{seq}", again.lines_for([b])) for seq, b in enumerate(batches)]
        assert all(lines for _, lines in redelivered)  # the in-memory window is empty after a restart
        assert spool.put_groups(redelivered) == 3 and spool.pending_lines == 0
        assert spool.counters["duplicate_groups"] == 3
        new = [(f"t:{gw}:1:3", again.lines_for([telemetry(gw, 3, 10)]))]
        assert spool.put_groups(new) == 0 and spool.flush().written_lines == len(new[0][1])
    match = f'{{__name__="sds011_pm2_5",gateway="{gw}"}}'
    assert eventually_raw(victoria, match, 40) == 40  # raw samples: no duplicate


def test_seen_keys_dead_lines_and_the_spool_are_bounded(tmp_path):
    class Down:
        def write(self, lines):
            from hub.ingest import StoreUnavailable
            raise StoreUnavailable("down")

    clock = [0.0]
    with SpoolClass(tmp_path / "s.db", Down(), clock=lambda: clock[0], max_pending_lines=100, seen_max_keys=5,
                    seen_max_age_s=3600) as spool:
        for i in range(30):
            clock[0] += 61  # past the prune interval each time
            spool.put_groups([(f"k{i}", [f"m,t=a v={i} {i}"] * 10)])
        assert spool.pending_lines == 100 and spool.counters["dropped_lines"] == 200
        assert spool.seen_keys <= 6  # pruned to the bound at each put (+ the one just added)


class Recording:
    """The real store writer, recording what each request carried; ``during(call)`` runs inside a request."""

    def __init__(self, writer, during=None) -> None:
        self.writer, self.during, self.requests = writer, during, []

    def write(self, bodies):
        self.requests.append(list(bodies))
        if self.during is not None:
            self.during(len(self.requests))
        self.writer.write(bodies)


def test_a_write_overlaps_a_commit_and_each_row_is_sent_once(victoria, tmp_path):
    """A row the store accepted is deleted at once, or, while a commit holds the spool (its fsync), after the
    next write at the latest: that next write must not carry the same row again."""
    gw = "gw-overlap"
    ing = Ingest()
    groups = [(f"t:{gw}:1:{seq}", ing.lines_for([telemetry(gw, seq, 2)])) for seq in range(3)]
    held, release = threading.Event(), threading.Event()
    seen_during_second: list[int] = []

    def commit_in_progress() -> None:  # what a concurrent put_groups does: hold the spool through its fsync
        with spool._mutex:
            held.set()
            release.wait(10)

    def during(call: int) -> None:
        if call == 1:
            threading.Thread(target=commit_in_progress, daemon=True).start()
            assert held.wait(10)
        elif call == 2:
            seen_during_second.append(spool.pending_batches)  # the first row's delete is still waiting
            release.set()

    recording = Recording(make_writer(TargetConfig("v2", victoria.url, database="dozor", org="dozor", token="t")),
                          during)
    with SpoolClass(tmp_path / "spool.db", recording, max_lines_per_write=10) as spool:
        spool.put_groups(groups)
        result = spool.flush()
        assert result.written_lines == 30 and result.pending_lines == 0 and spool.pending_batches == 0
    assert seen_during_second == [3]
    assert recording.requests == [["\n".join(lines)] for _, lines in groups]  # in order, each once
    assert eventually_raw(victoria, f'{{__name__="sds011_pm2_5",gateway="{gw}"}}', 6) == 6


def test_rows_evicted_from_the_memory_cache_are_read_back(victoria, tmp_path, monkeypatch):
    """The writer sends committed bodies from memory; beyond the cache's bound it reads them from SQLite."""
    monkeypatch.setattr(spool_module, "RECENT_MAX_LINES", 10)
    gw = "gw-evicted"
    ing = Ingest()
    groups = [(f"t:{gw}:1:{seq}", ing.lines_for([telemetry(gw, seq, 2)])) for seq in range(3)]
    recording = Recording(make_writer(TargetConfig("v2", victoria.url, database="dozor", org="dozor", token="t")))
    with SpoolClass(tmp_path / "spool.db", recording, max_lines_per_write=10) as spool:
        for group in groups:
            spool.put_groups([group])
        assert spool.flush().written_lines == 30
    assert recording.requests == [["\n".join(lines)] for _, lines in groups]
    assert eventually_raw(victoria, f'{{__name__="sds011_pm2_5",gateway="{gw}"}}', 6) == 6
