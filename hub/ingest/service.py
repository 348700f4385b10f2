"""Telemetry ingest as a hub service: an MQTT handler that only buffers, and a flush loop that spools and
writes in a worker thread, so SQLite fsyncs and HTTP never block the event loop.

Wiring (in the hub app)::

    ingest = IngestService(IngestConfig(target=TargetConfig("v2", url, token=..., database="dozor"),
                                        spool_path=state_dir / "ingest-spool.sqlite"))
    dispatcher.on("telemetry", ingest.on_telemetry)
    task = asyncio.create_task(ingest.run())      # cancel on shutdown, then ``await ingest.aclose()``
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from contract.models import TelemetryBatch
from hub.aqi import DEFAULT_TABLES
from hub.ingest.pipeline import Ingest
from hub.ingest.spool import Backoff, FlushResult, Spool
from hub.ingest.writer import TargetConfig, make_writer


@dataclass(frozen=True)
class IngestConfig:
    target: TargetConfig
    spool_path: Path
    flush_interval_s: float = 1.0
    aqi_tables: tuple[str, ...] = field(default=DEFAULT_TABLES)
    backoff_initial_s: float = 0.5
    backoff_cap_s: float = 60.0


class IngestService:
    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        self.ingest = Ingest(aqi_tables=config.aqi_tables)
        self.spool = Spool(config.spool_path, make_writer(config.target),
                           backoff=Backoff(config.backoff_initial_s, cap=config.backoff_cap_s))
        self._buffer: list[str] = []

    def on_telemetry(self, msg: object) -> None:
        """Dispatcher handler: sync and cheap (convert and buffer); never raises for bad readings."""
        if not isinstance(msg, TelemetryBatch):
            self.ingest.counters["not_a_batch"] += 1
            return
        self._buffer += self.ingest.batch_lines(msg)

    @property
    def buffered_lines(self) -> int:
        return len(self._buffer)

    async def flush(self) -> FlushResult:
        """Move the buffer into the durable spool and write what the store takes (in a worker thread)."""
        lines, self._buffer = self._buffer, []
        if lines:
            return await asyncio.to_thread(self.spool.write, lines)
        return await asyncio.to_thread(self.spool.flush)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_interval_s)
            await self.flush()

    async def aclose(self) -> None:
        await self.flush()
        await asyncio.to_thread(self.spool.close)

    def counters(self) -> dict[str, int]:
        out = {f"ingest.{k}": v for k, v in self.ingest.counters.items()}
        out.update({f"spool.{k}": v for k, v in self.spool.counters.items()})
        out["spool.pending_lines"] = self.spool.pending_lines
        return out
