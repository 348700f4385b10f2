"""The ingest service's commit path (hub/ingest/service.py): a full batch of deferred PUBACKs starts its commit from
the read path itself, every ack goes out only once its lines are durable in the spool, a commit that fails keeps
its lines and acks for the next one, and the writer thread sends what commits spooled. Real SQLite, a real
VictoriaMetrics; counts only."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3

import pytest

from hub.ingest.service import IngestConfig, IngestService
from hub.ingest.writer import TargetConfig
from tests.ingest.helpers import noise_batch
from tests.telemetry.test_store_integration import eventually, vm_count

pytestmark = pytest.mark.integration

READINGS = 5  # per batch; 4 noise metrics each: one line per reading


def service(tmp_path, victoria, **kw) -> IngestService:
    target = TargetConfig("v2", victoria.url, database="dozor", org="dozor", token="t")
    return IngestService(IngestConfig(target=target, spool_path=tmp_path / "spool.db", aqi_tables=(),
                                      flush_interval_s=0.05), **kw)


def deliver(svc: IngestService, gateway: str, seq: int, acked: list[tuple[int, int]]) -> None:
    """What the hub's MQTT read callback does for one message: dispatch, then hand over its PUBACK. The ack
    records how many lines the spool held when it went out."""
    svc.on_telemetry(noise_batch(gateway, seq, READINGS))
    svc.defer_ack(lambda: acked.append((seq, svc.spool.counters["spooled_lines"])))


async def until(predicate, what: str) -> None:
    for _ in range(2000):  # a bound against a hang only: the condition is a count, never a duration
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_a_full_ack_batch_commits_from_the_read_path_and_acks_only_what_is_durable(victoria, tmp_path):
    svc = service(tmp_path, victoria, ack_batch=4)  # no run(): no commit loop, no writer thread
    acked: list[tuple[int, int]] = []
    try:
        for seq in range(3):
            deliver(svc, "gw-cp1", seq, acked)
        await asyncio.sleep(0)
        assert acked == [] and svc.spool.counters["spooled_lines"] == 0  # 3 < ack_batch: nothing yet
        deliver(svc, "gw-cp1", 3, acked)  # the 4th starts the commit at once
        await until(lambda: len(acked) == 4, "the four acks")
        assert acked == [(seq, 4 * READINGS) for seq in range(4)]  # each ack after all four batches were durable
        assert svc.buffered_lines == 0 and svc.spool.pending_lines == 4 * READINGS
    finally:
        await svc.aclose()


async def test_messages_that_came_during_a_commit_are_committed_right_after_it(victoria, tmp_path):
    svc = service(tmp_path, victoria, ack_batch=4, ack_delay_s=3600.0)  # the ack timer never fires here
    acked: list[tuple[int, int]] = []
    try:
        for seq in range(6):  # 4 start a commit; 2 more come while it is in flight (fewer than ack_batch)
            deliver(svc, "gw-cp4", seq, acked)
        await until(lambda: len(acked) == 6, "all six acks")  # group commit: the 2 go as soon as the 4 are done
        assert [n for _, n in acked] == [4 * READINGS] * 4 + [6 * READINGS] * 2
    finally:
        await svc.aclose()


async def test_a_failed_commit_keeps_lines_and_acks_and_the_next_one_spools_each_line_once(victoria, tmp_path):
    svc = service(tmp_path, victoria, ack_batch=2)
    acked: list[tuple[int, int]] = []
    blocker = sqlite3.connect(tmp_path / "spool.db", isolation_level=None, timeout=0)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the spool: the commit fails (database is locked)
        deliver(svc, "gw-cp2", 0, acked)
        deliver(svc, "gw-cp2", 1, acked)
        await until(lambda: svc.ingest.counters["spool_errors"] == 1, "the failed commit")
        assert acked == [] and svc.buffered_lines == 2 * READINGS  # kept, none acked
        blocker.execute("ROLLBACK")
        deliver(svc, "gw-cp2", 2, acked)  # the next full batch commits the kept lines first, in order
        await until(lambda: len(acked) == 3, "the three acks")
        assert [seq for seq, _ in acked] == [0, 1, 2] and {n for _, n in acked} == {3 * READINGS}
        assert svc.spool.pending_lines == 3 * READINGS and svc.spool.counters["duplicate_groups"] == 0
    finally:
        with contextlib.suppress(sqlite3.Error):
            blocker.execute("ROLLBACK")
        blocker.close()
        await svc.aclose()


async def test_the_writer_thread_stores_every_line_a_commit_spooled(victoria, tmp_path):
    svc = service(tmp_path, victoria, ack_batch=8)
    acked: list[tuple[int, int]] = []
    task = asyncio.create_task(svc.run())
    try:
        for seq in range(40):
            deliver(svc, "gw-cp3", seq, acked)
            if seq % 8 == 7:
                await asyncio.sleep(0)  # the read path yields to the loop between bursts, as the hub's does
        # the writer thread is woken by the committing thread and may store a commit's lines before the loop has
        # run that commit's acks: both counts, in either order
        await until(lambda: svc.spool.counters["written_lines"] == 40 * READINGS and len(acked) == 40,
                    "every line written and every message acked")
        assert svc.spool.pending_lines == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await svc.aclose()
    selector = '{__name__="noise_node_laeq",gateway="gw-cp3"}'
    assert await asyncio.to_thread(eventually, lambda: vm_count(victoria, selector), 40 * READINGS) == 40 * READINGS
