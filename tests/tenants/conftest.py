"""A real VictoriaMetrics shared by the cities of a test module (the one time-series store of a deployment)."""

from __future__ import annotations

import pytest

from simulators.tsdb import VictoriaMetrics


@pytest.fixture(scope="module")
def victoria():
    with VictoriaMetrics() as vm:
        yield vm
