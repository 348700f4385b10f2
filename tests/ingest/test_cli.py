"""`dozor air --json` and `dozor telemetry tail --json --count N` (real CLI processes) against a real hub that
got its readings over real Mosquitto; the store is off here (``kind = "none"``): the cache works without it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from contract.models import Reading, TelemetryBatch
from hub.aqi import compute
from tests.hub.helpers import api, eventually, hub_token
from tests.ingest.helpers import Publisher, noise_batch, store_config
from tests.ingest.test_hub_ingest import hub_running

pytestmark = pytest.mark.integration
DOZOR = str(Path(sys.executable).with_name("dozor"))


async def dozor(hub, *args: str, token: str | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        DOZOR, *args, "--hub", f"http://127.0.0.1:{hub.config.hub.api_port}", "--token", token or hub_token(hub),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "COLUMNS": "200"})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def pm(gw: str, seq: int, device: str, pm25: float, pm10: float, ts: float, flags=()) -> TelemetryBatch:
    return TelemetryBatch(gateway=gw, session=1, seq=seq, readings=(
        Reading(device=device, kind="sds011", ts=ts, metrics={"pm2_5": pm25, "pm10": pm10}, flags=flags),))


async def test_air_and_tail_cli_show_what_was_published(mosquitto, tmp_path):
    cfg = store_config(tmp_path, mosquitto.port, None)
    pub = Publisher(mosquitto.port)
    try:
        async with hub_running(cfg) as hub:
            await asyncio.to_thread(pub.batches, [
                pm("gw-n1", 0, "pm-1", 3.0, 10.0, 1_000.0),
                pm("gw-n1", 1, "pm-1", 40.2, 80.0, 1_060.0, ("high_humidity",)),  # newer: replaces the first
                pm("gw-s1", 0, "pm-9", 300.0, 650.0, 1_000.0)])                       # beyond the EPA table's end
            rc, out, err = await dozor(hub, "air", "--json")
            assert rc == 0, err
            air = json.loads(out)
            rows = {r["device"]: r for r in air["rows"]}
            assert air["tables"] == ["epa_2024", "eaqi_2024"]
            assert rows["pm-1"]["zone"] == "north" and rows["pm-1"]["pm2_5"] == 40.2 and rows["pm-1"]["pm10"] == 80.0
            assert rows["pm-1"]["high_humidity"] is True and rows["pm-9"]["high_humidity"] is False
            epa = compute("epa_2024", "pm2_5", 40.2)
            assert rows["pm-1"]["aqi"]["epa_2024"] == {"table": "epa_2024", "value": epa.value,
                                                      "category": "unhealthy_sensitive", "pollutant": "pm2_5",
                                                      "beyond": False}
            assert rows["pm-1"]["aqi"]["eaqi_2024"]["value"] == 3  # PM2.5 40.2 -> moderate (PM10 80 too)
            assert rows["pm-9"]["aqi"]["epa_2024"]["value"] == 500 and rows["pm-9"]["aqi"]["epa_2024"]["beyond"]
            rc, out, _ = await dozor(hub, "air", "--json", "--zone", "south")
            assert [r["device"] for r in json.loads(out)["rows"]] == ["pm-9"]
            assert [z["zone"] for z in json.loads(out)["zones"]] == ["south"]
            rc, out, _ = await dozor(hub, "air", "--zone", "atlantis")
            assert rc == 1
            rc, out, err = await dozor(hub, "air")  # the table renders
            assert rc == 0 and "pm-1" in out and "unhealthy sensitive" in out, err

            # the tail starts with the hub's backlog of gw-n1 (the two PM readings), then follows new ones
            tail = asyncio.create_task(dozor(hub, "telemetry", "tail", "--gateway", "gw-n1", "--json",
                                             "--count", "13", "--backlog", "100"))
            await asyncio.to_thread(pub.batches, [noise_batch("gw-n1", 10, 5), noise_batch("gw-s1", 10, 5),
                                                  noise_batch("gw-n1", 11, 6)])
            rc, out, err = await tail
            assert rc == 0, err
            lines = [json.loads(x) for x in out.splitlines()]
            got = [(r["gateway"], r["device"], r["ts"]) for r in lines]
            # everything of gw-n1, in order, whether the tail's first call came before the noise batches or not
            want = [("gw-n1", "pm-1", 1_000.0), ("gw-n1", "pm-1", 1_060.0)] + \
                [("gw-n1", "noise-1", r.ts) for b in (noise_batch("gw-n1", 10, 5), noise_batch("gw-n1", 11, 6))
                 for r in b.readings]
            assert got == want
            assert all(r["zone"] == "north" for r in lines)

            async with api(cfg, hub_token(hub)) as http:
                latest = (await http.get("/api/v1/telemetry/latest", params={"gateway": "gw-n1"})).json()
                page = (await http.get("/api/v1/telemetry/tail", params={"last": 3})).json()
            assert [d["device"] for d in latest] == ["noise-1", "pm-1"]
            assert latest[1]["metrics"]["pm2_5"]["value"] == 40.2
            assert latest[0]["metrics"]["laeq"]["ts"] == noise_batch("gw-n1", 11, 6).readings[-1].ts
            assert [r["cursor"] for r in page["readings"]] == [17, 18, 19] and page["cursor"] == 19
            await eventually(lambda: hub.latest.cursor == 19, what="cache")
    finally:
        pub.close()
