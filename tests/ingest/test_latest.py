"""The latest-state cache: newest value per metric, cursors, the bounded tail, long-poll wake-up."""

from __future__ import annotations

import asyncio

from contract.models import Reading
from hub.ingest.latest import LatestCache
from hub.ingest.pipeline import Ingest
from tests.ingest.helpers import noise_batch


def r(device: str, ts: float, **metrics: float) -> Reading:
    return Reading(device=device, kind="sds011", ts=ts, metrics=metrics)


def test_newest_value_per_metric_wins_and_late_readings_do_not_hide_it():
    c = LatestCache()
    c.on_reading("gw", "z", r("pm", 10, pm2_5=5.0, pm10=9.0))
    c.on_reading("gw", "z", r("pm", 20, pm2_5=7.0))
    c.on_reading("gw", "z", r("pm", 15, pm2_5=99.0, pm10=11.0))  # replayed from an outbox: older than 20
    (dev,) = c.latest()
    assert (dev.value("pm2_5"), dev.metrics["pm2_5"].ts) == (7.0, 20)
    assert (dev.value("pm10"), dev.metrics["pm10"].ts) == (11.0, 15)
    assert [d.device for d in c.air(zone="z")] == ["pm"] and c.air(zone="other") == []


def test_cursors_filters_limits_and_the_bounded_tail():
    c = LatestCache(tail_size=5)
    for i in range(8):
        c.on_reading("a" if i % 2 == 0 else "b", None, r(f"d{i}", i, pm2_5=float(i)))
    items, nxt, missed = c.since(0)
    assert [i.cursor for i in items] == [4, 5, 6, 7, 8] and nxt == 8 and missed == 3
    items, nxt, missed = c.since(4, gateway="a", limit=1)
    assert [i.cursor for i in items] == [5] and nxt == 5 and missed == 0
    assert c.since(8) == ([], 8, 0)
    assert c.last(2, gateway="b") == 5 and c.last(0) == 8 and c.last(100) == 3
    items, nxt, _ = c.since(1000)  # a cursor from before a hub restart: start again from the buffer
    assert [i.cursor for i in items] == [4, 5, 6, 7, 8] and nxt == 8


async def test_wait_wakes_on_the_next_reading():
    c = LatestCache()
    waiter = asyncio.create_task(c.wait(0, 30))
    await asyncio.sleep(0)
    assert not waiter.done()
    c.on_reading("gw", None, r("pm", 1, pm2_5=1.0))
    await asyncio.wait_for(waiter, 5)
    await c.wait(0, 30)  # already there: returns at once


def test_ingest_feeds_the_cache_only_with_new_clean_readings():
    c = LatestCache()
    ing = Ingest(zone_of={"gw-n1": "north"}.get, on_reading=c.on_reading)
    b = noise_batch("gw-n1", 1, 3)
    lines = ing.batch_lines(b) + ing.batch_lines(b)  # the second is a duplicate
    assert len(lines) == 3 and c.cursor == 3 and all(",zone=north " in ln for ln in lines)
    bad = b.model_copy(update={"seq": 2, "readings": (b.readings[0].model_copy(update={"metrics": {"laeq": 500.0}}),)})
    assert ing.batch_lines(bad) == [] and c.cursor == 3 and ing.counters["rejected_readings"] == 1


def test_fast_line_equals_the_reference_serialiser():
    from hub.ingest.lineproto import reading_point

    ing = Ingest()
    cases = [(None, Reading(device="pm-1", kind="pms5003", ts=1767225600.1234, metrics={"pm2_5": 12.0, "pm10": 20.5},
                            flags=("high_humidity", "warming up", "a,b=c"))),
             ("north", Reading(device="n.1", kind="noise_node", ts=1.5, metrics={"laeq": 55.55, "la90": 40})),
             ("z-2", Reading(device="h", kind="health", ts=0.0, metrics={"uptime_s": 1e12, "x": -0.0}))]
    for zone, reading in cases:
        for _ in range(2):  # built once, then from the cache
            assert ing._line("gw-1", zone, reading, dict(reading.metrics)) == \
                reading_point("gw-1", reading, {"zone": zone} if zone else None).line()
