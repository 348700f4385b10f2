"""Real time-series stores for the telemetry tests, on free loopback ports, one of each per module."""

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
