"""The hub's bulk path for telemetry wire version 2: the same lines as version 1 for the same readings (zone,
flags, AQI, out-of-range removal), nothing but the hub's own head on every line whatever the rows say, bad
series counted, the latest-state cache fed whole series, and the spool packing batches into rows and writing
several rows per request. End to end over real Mosquitto into a real VictoriaMetrics, counted as raw samples."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import topics
from contract.codecs import telemetry as wire
from contract.models import CompactBatch, CompactSeries, Reading, TelemetryBatch
from hub.ingest import Spool, StoreRejected
from hub.ingest.latest import LatestCache
from hub.ingest.pipeline import Ingest
from tests.hub.helpers import eventually
from tests.hub.helpers import running_hub as hub_running
from tests.ingest.helpers import NOISE, Publisher, noise_batch, store_config
from tests.ingest.test_exactly_once import eventually_raw

ZONES = {"gw-1": "north"}.get
KINDS = ["sds011", "pms5003", "noise_node", "bme280", "health"]
METRICS = ["pm2_5", "pm10", "laeq", "lafmax", "temperature", "humidity", "lceq", "uptime_s"]


@st.composite
def readings(draw):
    out = []
    for i in range(draw(st.integers(1, 12))):
        fields = draw(st.lists(st.sampled_from(METRICS), min_size=1, max_size=3, unique=True))
        values = st.one_of(st.floats(-50, 1200, allow_nan=False), st.integers(-5, 3000))
        out.append(Reading(device=draw(st.sampled_from(["d1", "d2"])), kind=draw(st.sampled_from(KINDS)),
                           ts=1_767_225_600 + i + draw(st.integers(0, 999)) / 1000,
                           metrics={f: float(draw(values)) for f in fields},
                           flags=tuple(draw(st.lists(st.sampled_from(["stuck", "warming_up"]), max_size=1)))))
    return out


def _relevant(counters: Counter) -> dict:
    return {k: v for k, v in counters.items() if k not in ("batches", "python_path_series")}  # (v1 has no C pass)


@settings(max_examples=150, deadline=None)
@given(readings())
def test_version_2_gives_the_same_lines_and_counts_as_version_1(rs):
    one, two = Ingest(zone_of=ZONES), Ingest(zone_of=ZONES)
    v1 = one.batch_lines(TelemetryBatch(gateway="gw-1", session=1, seq=1, readings=tuple(rs)))
    v2 = two.batch_lines(wire.decode(wire.encode("gw-1", 1, 1, rs)))
    assert Counter(v2) == Counter(v1)  # grouped by series on the wire, so the order may differ
    assert _relevant(two.counters) == _relevant(one.counters)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789e.-,\n =x", min_size=1, max_size=120), st.integers(1, 3))
def test_whatever_the_rows_say_every_line_has_the_hubs_head_or_the_series_is_refused(rows, nfields):
    series = CompactSeries(device="d1", kind="noise_node", fields=("laeq", "lceq", "la90")[:nfields], rows=rows)
    batch = CompactBatch(gateway="gw-1", session=1, seq=1, series=(series,))
    ing = Ingest(zone_of=ZONES)
    lines = ing.batch_lines(batch)
    rejected = sum(v for k, v in ing.counters.items() if k.startswith("rejected_series."))
    if rejected:
        assert lines == [] and ing.counters["rejected_readings"] == rows.count("\n") + 1
        return
    assert len(lines) == rows.count("\n") + 1 - ing.counters["rejected_readings"]
    for line in lines:
        head, fields, ts = line.split(" ")  # nothing in the rows can add a space, a line or a tag
        assert head.startswith("noise_node,device=d1") and head.endswith(",gateway=gw-1,zone=north")
        assert ts.isdigit() and all(f.split("=")[0] in series.fields for f in fields.split(","))


def test_bad_series_are_counted_and_the_good_ones_of_the_batch_go_on():
    good = CompactSeries(device="d1", kind="noise_node", fields=("laeq",), rows="50.0,1767225600000\n51.0,1767225601000")
    bad = [CompactSeries(device="d2", kind="noise_node", fields=("laeq",), rows=rows)
           for rows in ("50.0,1767225600000,7", "5O.0,1767225600000", "50.0,1767225600000.0")]
    ing = Ingest()
    lines = ing.batch_lines(CompactBatch(gateway="gw-1", session=1, seq=1, series=(bad[0], good, *bad[1:])))
    assert len(lines) == 2 and all(",device=d1," in ln for ln in lines)
    assert {k: v for k, v in ing.counters.items() if k.startswith("rejected")} == {
        "rejected_series.bad_width": 1, "rejected_series.bad_rows": 1, "rejected_series.bad_timestamp": 1,
        "rejected_readings": 3}
    assert ing.counters["readings"] == 2


def test_the_latest_cache_takes_whole_series_and_serves_them_reading_by_reading():
    rs = [Reading(device="pm", kind="sds011", ts=10 + i, metrics={"pm2_5": float(i), "pm10": 2.0 * i})
          for i in range(6)]
    per_reading, whole = LatestCache(tail_size=4), LatestCache(tail_size=4)
    Ingest(on_reading=per_reading.on_reading).batch_lines(TelemetryBatch(gateway="g", session=1, seq=1,
                                                                         readings=tuple(rs)))
    Ingest(on_rows=whole.on_rows).batch_lines(wire.decode(wire.encode("g", 1, 1, rs[3:] + rs[:3])))  # shuffled
    whole.on_reading("g", None, Reading(device="x", kind="bme280", ts=1, metrics={"temperature": 20.0}))
    per_reading.on_reading("g", None, Reading(device="x", kind="bme280", ts=1, metrics={"temperature": 20.0}))
    for c in (per_reading, whole):
        assert c.cursor == 7 and [d.device for d in c.latest()] == ["pm", "x"]
        assert c.latest()[0].value("pm2_5") == 5.0 and c.latest()[0].metrics["pm10"].ts == 15
    items, nxt, missed = whole.since(0)
    assert [i.cursor for i in items] == [4, 5, 6, 7] and nxt == 7 and missed == 3
    assert [i.reading.ts for i in items] == [10.0, 11.0, 12.0, 1.0]  # arrival order: the series was shuffled
    assert len(whole.tail) == len(per_reading.tail) == 4 and [i.cursor for i in whole.tail] == [4, 5, 6, 7]
    assert whole.since(4, gateway="g", limit=2)[0][-1].cursor == 6 and whole.last(2) == 5


class Picky:
    """A store that refuses any request holding a line with ``bad`` (as a real one refuses a bad line)."""

    name = "picky"

    def __init__(self) -> None:
        self.requests: list[list[str]] = []

    def write(self, lines):
        body = "\n".join(lines).split("\n")
        if any("bad" in ln for ln in body):
            raise StoreRejected("picky", "rejected", "bad line")
        self.requests.append(body)

    def close(self) -> None:
        pass


def test_spool_packs_batches_into_rows_and_finds_a_bad_line_among_them(tmp_path):
    store = Picky()
    batch = lambda i: ("\n".join(f"m v={i}.{k} {k}" for k in range(10)), 10)  # noqa: E731
    groups = [(f"t:{i}", [batch(i)[0]], 10) for i in range(12)]
    groups[7] = ("t:7", ["m v=7.0 0\nm bad 1\n" + "\n".join(f"m v=7.{k} {k}" for k in range(2, 10))], 10)
    with Spool(tmp_path / "s.db", store, max_lines_per_write=30) as spool:
        assert spool.put_groups(groups) == 0 and spool.pending_batches == 4  # 120 lines in rows of 30
        result = spool.flush()
        assert result.written_lines == 119 and result.pending_lines == 0
        assert [ln for ln, _ in spool.dead()] == ["m bad 1"] and spool.counters["dead_lines"] == 1
        assert spool.put_groups(groups[:3]) == 3  # seen before: skipped, durably
    written = [ln for req in store.requests for ln in req]
    assert len(written) == len(set(written)) == 119  # each line once, in order
    assert written == [ln for _, (text,), _ in groups for ln in text.split("\n") if "bad" not in ln]


@pytest.mark.integration
async def test_compact_batches_end_to_end_exactly_once(mosquitto, victoria, tmp_path):
    cfg = store_config(tmp_path, mosquitto.port, victoria)
    pub = Publisher(mosquitto.port)
    batches = [noise_batch(gw, seq, 25, session=7) for gw in ("gw-n1", "gw-s1") for seq in range(20)]
    compact = [(topics.gw(b.gateway, "telemetry"), wire.encode(b.gateway, b.session, b.seq, b.readings))
               for b in batches]
    try:
        async with hub_running(cfg) as hub:
            await asyncio.to_thread(pub.publish_all, compact)
            await asyncio.to_thread(pub.publish_all, compact[:5])  # redelivered: same (gateway, session, seq)
            await asyncio.to_thread(pub.batches, batches[5:9])  # the same batches again, as version 1
            bad_rows = CompactBatch(gateway="gw-n1", session=7, seq=99, series=(
                CompactSeries(device="noise-1", kind="noise_node", fields=("laeq",), rows="50,1\n50"),)).to_bytes()
            await asyncio.to_thread(pub.publish_all, [
                (topics.gw("gw-n1", "telemetry"), bad_rows),
                (topics.gw("gw-n1", "telemetry"), compact[-1][1])])  # gw-s1's batch on gw-n1's topic
            await eventually(lambda: hub.pipeline.counters["batches"] == 41
                             and hub.pipeline.counters["duplicate_batches"] == 9, what="batches and duplicates")
            await eventually(lambda: hub.ingest.spool.counters["written_lines"] >= 1000
                             and hub.ingest.spool.pending_lines == 0 and hub.ingest.buffered_lines == 0,
                             what="1000 lines written")
            assert hub.pipeline.counters["rejected_series.bad_width"] == 1
            assert hub.latest.cursor == 1000
    finally:
        pub.close()
    match = '{__name__=~"noise_node_.*",gateway=~"gw-n1|gw-s1"}'
    assert await asyncio.to_thread(eventually_raw, victoria, match, 1000 * len(NOISE)) == 1000 * len(NOISE)
