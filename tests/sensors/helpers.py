"""Helpers for the sensor tests: a collecting sink, waiting on conditions (never on durations)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.codecs import telemetry as telemetry_wire
from contract.models import Reading, TelemetryBatch
from gateway.config import BusConfig, SensorDevice

WAIT_S = 10.0  # generous upper bound for a condition; tests assert counts, not how long it took


async def wait_until(cond: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.01)


@dataclass
class Sink:
    readings: list[Reading] = field(default_factory=list)
    events: list[tuple[str, str, float, dict[str, Any]]] = field(default_factory=list)

    def submit_reading(self, reading: Reading) -> None:
        self.readings.append(reading)

    def submit_event(self, device: str, kind: str, ts: float, data: dict[str, Any]) -> None:
        self.events.append((device, kind, ts, data))


def uart_bus(path: Path, baudrate: int = 9600) -> BusConfig:
    return BusConfig(name="uart-1", port=str(path), baudrate=baudrate, kind="uart", reopen_s=0.05)


def device(kind: str, dev_id: str = "s-1", bus: str | None = "uart-1", **options: Any) -> SensorDevice:
    return SensorDevice.model_validate({"id": dev_id, "kind": kind, "bus": bus, **options})


class Recorder:
    """An in-process ``publish``: records (topic, payload); raises while ``fail`` is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.fail = False

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        assert qos == 1
        if self.fail:
            raise ConnectionError("down")
        self.sent.append((topic, payload))

    def batches(self) -> list[TelemetryBatch]:
        return [telemetry_wire.decode_batch(p) for t, p in self.sent if t.endswith("/telemetry")]

    def readings(self) -> list[Reading]:
        return [r for b in self.batches() for r in b.readings]
