"""Exactly once into the store: the spool records each batch's stable key in the same transaction as its lines,
so a batch redelivered after a hub kill -9 (spooled, PUBACK not yet sent) is skipped, across a reopen of the
SQLite file. Counted as RAW samples in a real VictoriaMetrics (which keeps duplicate samples)."""

from __future__ import annotations

import time

from hub.ingest import Ingest, Spool, TargetConfig, make_writer
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
