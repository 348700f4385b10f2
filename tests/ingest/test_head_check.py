"""Exactly once into the store across a kill between the store's answer and the spool's delete.

A real child process runs the spool against a real VictoriaMetrics (or InfluxDB 1.x) and is killed with
SIGKILL right after the store accepted a write and before the spool deleted the rows: the rows are stored and
still spooled. The next open of the spool must not store them twice (hub/ingest/recovery.py). Counts are RAW
samples from VictoriaMetrics' export API, so a duplicate shows."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from hub.ingest.recovery import make_check
from hub.ingest.spool import Spool
from hub.ingest.writer import TargetConfig, make_writer
from simulators.brokers import free_port
from simulators.tsdb import InfluxDB1, VictoriaMetrics
from tests.ingest.helpers import influx_count

pytestmark = pytest.mark.integration

# the child: spool the lines, then flush with a writer that kills the process as told
CHILD = r"""
import json, os, signal, sys
from hub.ingest.spool import Spool
from hub.ingest.writer import TargetConfig, make_writer
path, kind, url, when, lines = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
inner = make_writer(TargetConfig(kind, url))
writes = []
class Killing:
    name = inner.name
    def write(self, body):
        if when == "before-write":
            os.kill(os.getpid(), signal.SIGKILL)
        inner.write(body)  # the store accepted it...
        writes.append(len(body))
        if len(writes) == int(when.split(":")[1]):  # "after-write:N"
            os.kill(os.getpid(), signal.SIGKILL)  # ...and the spool never hears of it: its rows stay
    def close(self):
        inner.close()
spool = Spool(path, Killing(), max_lines_per_write=50)
spool.put(lines)
spool.flush()
raise SystemExit("not killed")
"""


def lines_of(measurement: str, n: int, t0: int = 1_767_225_600_000, step: int = 1) -> list[str]:
    """Two fields a line; device tags with a space and a double quote (escaped in line protocol and in series
    selectors differently)."""
    return [f'{measurement},device=d\\ "{i % 3},gateway=gw-1 laeq={50 + i * 0.25},lamax={60 + i * 0.5} {t0 + i * step}'
            for i in range(n)]


def run_child(path, kind: str, url: str, when: str, lines: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), kind, url, when, json.dumps(lines)],
                          capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]


def raw(vm: VictoriaMetrics, measurement: str) -> dict[tuple[str, str, int], int]:
    """(metric, device, timestamp) -> how many raw samples VictoriaMetrics holds."""
    vm.flush()
    out: dict[tuple[str, str, int], int] = {}
    for series in vm.export(f'{{__name__=~"{measurement}_.*"}}'):
        for ts in series["timestamps"]:
            key = (series["metric"]["__name__"], series["metric"]["device"], ts)
            out[key] = out.get(key, 0) + 1
    return out


def recover(path, url: str) -> int:
    """Open the spool the child left as a restarted hub does (the head check on) and flush it all; returns how many
    lines the check found in the store already."""
    target = TargetConfig("v1", url)
    with Spool(path, make_writer(target), head_check=make_check(target), head_settle_s=0,
               max_lines_per_write=50) as spool:
        assert spool.flush().pending_lines == 0
        return spool.counters["head_already_stored_lines"]


@pytest.fixture(scope="module")
def victoria():
    with VictoriaMetrics() as vm:
        yield vm


@pytest.mark.parametrize(("kind", "stored"), [("v1", 1), ("v2", 1), ("v1", 2)])
def test_a_kill_after_the_store_accepted_stores_nothing_twice(victoria, tmp_path, kind, stored):
    """Rows of 50 lines, a request each. ``stored`` 1: the kill comes right after the store took the first
    request. 2: the first two requests are in the store and still spooled (a power cut that undid the spool's
    deletes; the child here stores them straight, then dies before its own first write)."""
    meas = f"hc_kill_{kind}_{stored}"
    lines = lines_of(meas, 120)
    if stored == 1:
        run_child(tmp_path / "spool.sqlite", kind, victoria.url, "after-write:1", lines)
    else:
        make_writer(TargetConfig(kind, victoria.url)).write(lines[:100])
        run_child(tmp_path / "spool.sqlite", kind, victoria.url, "before-write", lines)
    before = raw(victoria, meas)
    assert sum(before.values()) == 2 * 50 * stored  # two fields a line

    target = TargetConfig(kind, victoria.url)
    with Spool(tmp_path / "spool.sqlite", make_writer(target), head_check=make_check(target), head_settle_s=0,
               max_lines_per_write=50) as spool:
        assert spool.suspect_head
        result = spool.flush()
        assert result.store_up and result.pending_lines == 0
        assert spool.counters["head_already_stored_lines"] == 50 * stored
        assert not spool.suspect_head
    after = raw(victoria, meas)
    assert len(after) == 2 * 120 and set(after.values()) == {1}  # every field of every line, once


def test_without_the_check_the_same_kill_stores_readings_twice(victoria, tmp_path):
    """The oracle the check is measured against: with ``head_check = "off"`` the head is written again."""
    meas = "hc_off"
    run_child(tmp_path / "spool.sqlite", "v1", victoria.url, "after-write:1", lines_of(meas, 120))
    target = TargetConfig("v1", victoria.url)
    with Spool(tmp_path / "spool.sqlite", make_writer(target), head_check=make_check(target, "off"),
               max_lines_per_write=50) as spool:
        assert spool.flush().pending_lines == 0
    after = raw(victoria, meas)
    assert sum(after.values()) == 2 * 120 + 2 * 50  # the first request's 50 lines stored twice


def test_a_kill_before_the_write_checks_once_and_writes_everything(victoria, tmp_path):
    meas = "hc_before"
    run_child(tmp_path / "spool.sqlite", "v1", victoria.url, "before-write", lines_of(meas, 80))
    assert recover(tmp_path / "spool.sqlite", victoria.url) == 0
    after = raw(victoria, meas)
    assert len(after) == 2 * 80 and set(after.values()) == {1}


def test_a_partly_stored_request_is_completed_field_by_field(victoria, tmp_path):
    """A request cut off mid-body: the store holds some lines whole and one line with one field only."""
    meas = "hc_part"
    lines = lines_of(meas, 40)
    head, fields, ts = re.split(r"(?<!\\) ", lines[10])
    first_field_only = f"{head} {fields.split(',')[0]} {ts}"
    make_writer(TargetConfig("v1", victoria.url)).write(lines[:10] + [first_field_only])
    run_child(tmp_path / "spool.sqlite", "v1", victoria.url, "before-write", lines)
    assert recover(tmp_path / "spool.sqlite", victoria.url) == 10
    after = raw(victoria, meas)
    assert len(after) == 2 * 40 and set(after.values()) == {1}


def test_a_request_spanning_a_backlog_and_live_lines_is_asked_about_span_by_span(victoria, tmp_path):
    """One request holding readings an hour apart (a backlog drained next to live ones): each span is looked up
    for its own series, and what the store holds of either is not written again."""
    meas = "hc_spans"
    lines = lines_of(meas, 30, step=120_000) + lines_of(meas, 20, t0=1_767_300_000_000)  # 2-minute gaps, then live
    make_writer(TargetConfig("v1", victoria.url)).write(lines[::2])  # every other line is in the store already
    run_child(tmp_path / "spool.sqlite", "v1", victoria.url, "before-write", lines)
    assert recover(tmp_path / "spool.sqlite", victoria.url) == 25
    after = raw(victoria, meas)
    assert len(after) == 2 * 50 and set(after.values()) == {1}


def test_influxdb_cannot_be_asked_and_overwrites_what_is_written_again(tmp_path):
    with InfluxDB1() as influx:  # database "dozor", the writer's default
        run_child(tmp_path / "spool.sqlite", "v1", influx.url, "after-write:1", lines_of("hc_influx", 120))
        target = TargetConfig("v1", influx.url, database=influx.database)
        with Spool(tmp_path / "spool.sqlite", make_writer(target), head_check=make_check(target), head_settle_s=0,
                   max_lines_per_write=50) as spool:
            assert spool.flush().pending_lines == 0
            assert spool.counters["head_unchecked_lines"] == 50  # no export API: written again...
        # ...and InfluxDB keeps one point per series and timestamp
        assert influx_count(influx, "SELECT count(laeq) FROM hc_influx") == 120


def test_a_clean_close_leaves_nothing_to_check_even_with_rows_left(tmp_path):
    target = TargetConfig("v1", f"http://127.0.0.1:{free_port()}", timeout_s=1)  # nothing listens: store down
    with Spool(tmp_path / "spool.sqlite", make_writer(target), head_check=make_check(target)) as spool:
        assert not spool.suspect_head  # a new spool
        spool.put(lines_of("hc_clean", 5))
        assert not spool.flush().store_up
    with Spool(tmp_path / "spool.sqlite", make_writer(target), head_check=make_check(target)) as spool:
        assert spool.pending_lines == 5 and not spool.suspect_head


def test_a_store_that_is_down_during_the_check_is_asked_again_later(victoria, tmp_path):
    meas = "hc_down"
    run_child(tmp_path / "spool.sqlite", "v1", victoria.url, "after-write:1", lines_of(meas, 60))
    target = TargetConfig("v1", victoria.url)
    down = TargetConfig("v1", f"http://127.0.0.1:{free_port()}", timeout_s=1)
    with Spool(tmp_path / "spool.sqlite", make_writer(target), head_check=make_check(down), head_settle_s=0,
               max_lines_per_write=50) as spool:
        first = spool.flush(force=True)
        assert not first.store_up and first.pending_lines == 60 and spool.suspect_head
        assert spool.counters["write_failures"] == 1
        spool.head_check.close()
        spool.head_check = make_check(target)  # the store answers again
        assert spool.flush(force=True).pending_lines == 0
        assert spool.counters["head_already_stored_lines"] == 50
    after = raw(victoria, meas)
    assert len(after) == 2 * 60 and set(after.values()) == {1}
