"""A real InfluxDB 1.6 on loopback holding the demo-shaped data, loaded once per module."""

from __future__ import annotations

import httpx
import pytest

from hub.ingest.writer import TargetConfig, make_writer
from simulators.tsdb import InfluxDB1
from tests.grafana import demo_data


class Loaded:
    def __init__(self, db: InfluxDB1, ingest_counters: dict[str, int]) -> None:
        self.db = db
        self.ingest_counters = ingest_counters

    def query(self, q: str) -> dict:
        """One statement through /query as Grafana's datasource sends it (POST form, epoch=ms)."""
        r = httpx.post(self.db.url + "/query", data={"q": q, "db": self.db.database, "epoch": "ms"}, timeout=30.0)
        assert r.status_code == 200, f"{r.status_code} {r.text[:300]} for {q}"
        result = r.json()["results"][0]
        assert "error" not in result, f"InfluxDB: {result['error']} for {q}"
        return result


@pytest.fixture(scope="module")
def demo_influx():
    readings, ingest = demo_data.reading_lines()
    with InfluxDB1() as db:
        writer = make_writer(TargetConfig("v1", db.url, database=db.database))
        try:
            for lines in (readings, demo_data.fleet_lines(), demo_data.alert_lines()):
                for i in range(0, len(lines), 2000):
                    writer.write(lines[i:i + 2000])
        finally:
            writer.close()
        yield Loaded(db, dict(ingest.counters))
