"""Writer + spool against REAL VictoriaMetrics (v2 API) and REAL InfluxDB 1.6 (v1 /write).

Counts are read back exactly; while a store is down nothing is lost. No wall-clock assertions: the spool's
backoff runs on a hand-driven clock, and read-back polls only until the expected count shows up.
"""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.models import DeviceKind, Reading, TelemetryBatch
from hub.ingest import Backoff, Ingest, Spool, StoreUnavailable, TargetConfig, make_writer
from hub.ingest.writer import StoreRejected, _classify

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0
_gw = itertools.count(1)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def telemetry(gw: str, seq: int, n: int, *, t0: float = T0) -> tuple[str, bytes]:
    readings = tuple(Reading(device=f"dust-{i % 3}", kind=DeviceKind.SDS011, ts=t0 + seq * 100 + i,
                             metrics={"pm2_5": 10.0 + i, "pm10": 20.0 + i}, flags=("high_humidity",) if i % 2 else ())
                     for i in range(n))
    return f"dozor/v1/gw/{gw}/telemetry", TelemetryBatch(gateway=gw, session=1, seq=seq, readings=readings).to_bytes()


def eventually(fn, want, timeout: float = 20.0):
    """Poll a read-back until it equals ``want`` (stores index asynchronously); return the last value."""
    deadline = time.monotonic() + timeout
    got = fn()
    while got != want and time.monotonic() < deadline:
        time.sleep(0.2)
        got = fn()
    return got


def vm_count(vm, selector: str) -> int:
    vm.flush()
    return sum(len(s["values"]) for s in vm.export(selector))


def influx_count(db, q: str) -> int:
    res = db.query(q)["results"][0]
    if "series" not in res:
        return 0
    return sum(row[1] for s in res["series"] for row in s["values"])


def v1(db) -> TargetConfig:
    return TargetConfig("v1", db.url, database=db.database)


def v2(vm) -> TargetConfig:
    return TargetConfig("v2", vm.url, database="dozor", org="dozor", token="t")


# ---- VictoriaMetrics through the v2 API -------------------------------------------------------------------------

def test_v2_victoriametrics_exact_counts_and_text_in_tags(victoria, tmp_path):
    gw = f"gw-vm-{next(_gw)}"
    ing = Ingest()
    lines = ing.lines_for([telemetry(gw, seq, 10) for seq in range(5)])
    with Spool(tmp_path / "spool.db", make_writer(v2(victoria))) as spool:
        result = spool.write(lines)
    assert result.store_up and result.pending_lines == 0 and result.written_lines == len(lines)
    assert eventually(lambda: vm_count(victoria, f'{{__name__="sds011_pm2_5",gateway="{gw}"}}'), 50) == 50
    assert vm_count(victoria, f'{{__name__="sds011_pm10",gateway="{gw}"}}') == 50
    series = victoria.export(f'{{__name__="sds011_pm2_5",gateway="{gw}",flags="high_humidity"}}')
    assert sum(len(s["values"]) for s in series) == 25
    aqi = victoria.export(f'{{__name__="aqi_index",gateway="{gw}",table="epa_2024",pollutant="pm2_5"}}')
    assert sum(len(s["values"]) for s in aqi) == 50
    assert {s["metric"]["category"] for s in aqi} == {"moderate"}  # 10..19 ug/m3 under EPA 2024


def test_v2_victoriametrics_down_spool_then_up_loses_nothing(victoria, tmp_path):
    gw = f"gw-vm-{next(_gw)}"
    clock = Clock()
    ing = Ingest()
    spool = Spool(tmp_path / "spool.db", make_writer(v2(victoria)), clock=clock,
                  backoff=Backoff(initial=1.0, cap=8.0, jitter=0.0))
    spool.write(ing.lines_for([telemetry(gw, 0, 4)]))
    victoria.stop()
    try:
        results = [spool.write(ing.lines_for([telemetry(gw, seq, 4)])) for seq in range(1, 6)]
        assert [r.store_up for r in results] == [False] * 5
        # one real attempt, then backing off: the next four writes only spooled
        assert spool.counters["write_failures"] == 1
        assert spool.pending_lines == 5 * 4 * 5  # 4 readings + 16 AQI lines per batch
        clock.t += 1.0
        assert spool.flush().store_up is False and spool.counters["write_failures"] == 2
        assert spool.next_try == pytest.approx(clock.t + 2.0)
        spool.close()  # the hub restarts while the store is still down
    finally:
        victoria.start()
    with Spool(tmp_path / "spool.db", make_writer(v2(victoria)), clock=clock) as again:
        assert again.pending_lines == 100
        assert again.flush().pending_lines == 0
        assert again.counters["written_lines"] == 100
    assert eventually(lambda: vm_count(victoria, f'{{__name__="sds011_pm2_5",gateway="{gw}"}}'), 24) == 24
    assert vm_count(victoria, f'{{__name__="aqi_index",gateway="{gw}"}}') == 24 * 4


# ---- InfluxDB 1.6 through v1 /write -------------------------------------------------------------------------------

def test_v1_influxdb_exact_counts_tags_and_escaping(influx1, tmp_path):
    gw = f"gw-ix-{next(_gw)}"
    ing = Ingest()
    lines = ing.lines_for([telemetry(gw, seq, 7) for seq in range(3)])
    with Spool(tmp_path / "spool.db", make_writer(v1(influx1))) as spool:
        assert spool.write(lines).written_lines == len(lines)
    q = f"SELECT count(pm2_5) FROM sds011 WHERE gateway='{gw}'"
    assert eventually(lambda: influx_count(influx1, q), 21) == 21
    assert influx_count(influx1, f"SELECT count(\"index\") FROM aqi WHERE gateway='{gw}'") == 21 * 4
    tags = influx1.query(f"SHOW TAG VALUES FROM sds011 WITH KEY = flags WHERE gateway='{gw}'")
    assert [v[1] for v in tags["results"][0]["series"][0]["values"]] == ["high_humidity"]


def test_v1_influxdb_nasty_tag_values_round_trip(influx1, tmp_path):
    from hub.ingest.lineproto import Point

    nasty = ["with space", "com,ma", "equal=sign", "quote\"d", "ünïcödé", "a, b=c d"]
    lines = [Point("nasty", {"v": float(i)}, int(T0 * 1000) + i, {"label": s}).line() for i, s in enumerate(nasty)]
    make_writer(v1(influx1)).write(lines)
    res = influx1.query("SHOW TAG VALUES FROM nasty WITH KEY = label")
    assert sorted(v[1] for v in res["results"][0]["series"][0]["values"]) == sorted(nasty)


def test_v1_influxdb_down_spool_then_up_loses_nothing(influx1, tmp_path):
    gw = f"gw-ix-{next(_gw)}"
    clock = Clock()
    ing = Ingest(aqi_tables=())
    spool = Spool(tmp_path / "spool.db", make_writer(v1(influx1)), clock=clock,
                  backoff=Backoff(initial=0.5, jitter=0.0))
    influx1.stop()
    try:
        for seq in range(10):
            spool.write(ing.lines_for([telemetry(gw, seq, 3)]))
        assert spool.pending_lines == 30 and spool.pending_batches == 10
        assert spool.counters["write_failures"] == 1
        assert "unreachable" in (spool.last_error or "")
    finally:
        influx1.start()
    assert spool.flush().pending_lines == 30  # still inside the backoff window: no attempt
    clock.t += 0.5
    assert spool.flush().pending_lines == 0
    q = f"SELECT count(pm2_5) FROM sds011 WHERE gateway='{gw}'"
    assert eventually(lambda: influx_count(influx1, q), 30) == 30
    # a batch delivered twice (at-least-once): the hub's dedup drops it, and even a rewrite of the same
    # points (e.g. after a hub restart lost the dedup window) does not double-count in the store
    assert ing.lines_for([telemetry(gw, 3, 3)]) == [] and ing.counters["duplicate_batches"] == 1
    assert spool.write(Ingest(aqi_tables=()).lines_for([telemetry(gw, 3, 3)])).written_lines == 3
    assert influx_count(influx1, q) == 30
    spool.close()


def test_v1_rejected_line_is_buried_good_lines_written(influx1, tmp_path):
    gw = f"gw-ix-{next(_gw)}"
    good = [f"sds011,gateway={gw},device=d pm2_5={i}.0 {int(T0 * 1000) + i}" for i in range(9)]
    bad = f"sds011,gateway={gw},device=d pm2_5=1.0 not-a-timestamp"
    with Spool(tmp_path / "spool.db", make_writer(v1(influx1))) as spool:
        result = spool.write(good[:4] + [bad] + good[4:])
        assert result.pending_lines == 0
        assert [line for line, _ in spool.dead()] == [bad]
        assert spool.counters["dead_lines"] == 1
    q = f"SELECT count(pm2_5) FROM sds011 WHERE gateway='{gw}'"
    assert eventually(lambda: influx_count(influx1, q), 9) == 9


def test_status_classification_and_unreachable_store():
    assert isinstance(_classify("x", 400, "bad"), StoreRejected)
    assert _classify("x", 413, "").reason == "too_large"
    for status in (401, 404, 429, 500, 503):
        assert isinstance(_classify("x", status, ""), StoreUnavailable)
    from simulators.brokers import free_port

    port = free_port()  # nothing listens here
    for cfg in (TargetConfig("v1", f"http://127.0.0.1:{port}"), TargetConfig("v2", f"http://127.0.0.1:{port}")):
        with pytest.raises(StoreUnavailable, match="unreachable"):
            make_writer(cfg).write(["m x=1.0 1"])


SPOOL_CHILD = """
import sys
from hub.ingest import Backoff, Spool, TargetConfig, make_writer
gw, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
spool = Spool(path, make_writer(TargetConfig("v1", f"http://127.0.0.1:{port}")), backoff=Backoff(initial=3600))
i = 0
while True:
    spool.write([f"sds011,gateway={gw},device=d{j} pm2_5={i}.5 {1700000000000 + i}" for j in range(5)])
    print(i, flush=True)
    i += 1
"""


def test_hub_killed_dash_nine_while_store_down_loses_nothing(influx1, tmp_path):
    import signal
    import subprocess
    import sys

    from simulators.brokers import free_port

    gw = f"gw-ix-{next(_gw)}"
    path = tmp_path / "spool.db"
    proc = subprocess.Popen([sys.executable, "-c", SPOOL_CHILD, gw, str(free_port()), str(path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    confirmed = 0
    for _line in proc.stdout:
        confirmed += 1
        if confirmed >= 60:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    confirmed += sum(1 for _ in proc.stdout)
    proc.stdout.close()
    with Spool(path, make_writer(v1(influx1))) as spool:
        pending = spool.pending_lines
        assert pending in (5 * confirmed, 5 * (confirmed + 1))  # the unconfirmed put may have landed
        assert spool.flush().pending_lines == 0
    q = f"SELECT count(pm2_5) FROM sds011 WHERE gateway='{gw}'"
    assert eventually(lambda: influx_count(influx1, q), pending) == pending


_fuzz_n = itertools.count()
TAG_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\\"),
                   min_size=1, max_size=20)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(TAG_TEXT, min_size=1, max_size=6, unique=True))
def test_v1_influxdb_escaping_fuzz_round_trip(influx1, values):
    """Whatever text we accept in a tag is stored and read back exactly by a real InfluxDB."""
    from hub.ingest.lineproto import Point

    meas = f"fuzz{next(_fuzz_n)}"
    lines = [Point(meas, {"v": 1.0}, int(T0 * 1000) + i, {"label": v}).line() for i, v in enumerate(values)]
    make_writer(v1(influx1)).write(lines)
    res = influx1.query(f"SHOW TAG VALUES FROM {meas} WITH KEY = label")
    assert sorted(v[1] for v in res["results"][0]["series"][0]["values"]) == sorted(values)


async def test_ingest_service_handler_buffers_and_flush_writes(victoria, tmp_path):
    from contract.models import decode
    from hub.ingest.service import IngestConfig, IngestService

    gw = f"gw-vm-{next(_gw)}"
    svc = IngestService(IngestConfig(target=v2(victoria), spool_path=tmp_path / "spool.db", aqi_tables=()))
    for seq in range(4):
        topic, payload = telemetry(gw, seq, 5)
        svc.on_telemetry(decode(TelemetryBatch, payload, topic=topic))
    svc.on_telemetry(decode(TelemetryBatch, telemetry(gw, 0, 5)[1]))  # redelivered batch
    svc.on_telemetry("not a batch")
    assert svc.buffered_lines == 20
    result = await svc.flush()
    assert result.written_lines == 20 and svc.buffered_lines == 0
    c = svc.counters()
    await svc.aclose()
    assert (c["ingest.batches"], c["ingest.duplicate_batches"], c["ingest.not_a_batch"]) == (4, 1, 1)
    assert (c["spool.pending_lines"], c["spool.written_lines"]) == (0, 20)
    assert eventually(lambda: vm_count(victoria, f'{{__name__="sds011_pm2_5",gateway="{gw}"}}'), 20) == 20
