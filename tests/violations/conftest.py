"""A real InfluxDB 1.6 for the violations tests (one per module); Mosquitto per test comes from tests/conftest.py."""

from __future__ import annotations

import pytest

from simulators.tsdb import InfluxDB1


@pytest.fixture(scope="module")
def influx1():
    with InfluxDB1() as db:
        yield db
