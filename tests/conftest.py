"""Shared fixtures: real servers on free loopback ports, started here and stopped afterwards."""

from __future__ import annotations

import pytest

from simulators.brokers import Mosquitto


@pytest.fixture
def mosquitto():
    """A fresh real Mosquitto broker for one test (restartable on the same port)."""
    with Mosquitto() as broker:
        yield broker


@pytest.fixture(scope="module")
def shared_mosquitto():
    with Mosquitto() as broker:
        yield broker
