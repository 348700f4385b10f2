"""Real stores for the ingest tests (one of each per module); Mosquitto per test comes from tests/conftest.py."""

from __future__ import annotations

import pytest

from simulators.tsdb import InfluxDB1, VictoriaMetrics


@pytest.fixture(scope="module")
def victoria():
    with VictoriaMetrics() as vm:
        yield vm


@pytest.fixture(scope="module")
def influx1():
    with InfluxDB1() as db:
        yield db
