"""The telemetry drain's value types: its settings, one flush (the unit of sending and of the persisted state) and
its error. Split from ``gateway/telemetry.py`` so that module stays one sitting's read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import GatewayError


class TelemetryError(GatewayError):
    pass


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    flush_s: float = 1.0  # how long readings gather before a batch leaves (when there is no backlog)
    # group commit's coalescing window: after the first reading of a commit, wait this long for more (ended early
    # when a driver waits to poll; never longer than flush_s). 0: commit as soon as the previous commit is done.
    coalesce_s: float = 0.015
    max_batch_items: int = 500
    max_batch_bytes: int = 128 * 1024  # well under contract MAX_PAYLOAD_BYTES
    rate: float = 100.0  # normal-lane items per second while draining a backlog
    burst: float = 500.0
    retry_min_s: float = 0.2
    retry_max_s: float = 5.0
    publish_timeout_s: float = 30.0
    max_queue: int = 20_000  # readings waiting for the disk; beyond that they are counted and dropped
    stuck_repeats: int = 30
    wire_version: int = 2  # 2: compact batches (contract.codecs.telemetry); 1: for hubs older than version 2


@dataclass
class Flush:
    """One unit of sending: events published one by one, then one TelemetryBatch; then the ids are acked."""

    session: int
    seq: int
    ids: list[int]
    batch: bytes | None  # TelemetryBatch JSON, or None when the flush holds only events
    readings: int
    messages: list[tuple[str, bytes]] = field(default_factory=list)  # (topic, payload): events and others
    sent_messages: int = 0
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"session": self.session, "seq": self.seq, "ids": self.ids, "readings": self.readings,
                "batch": None if self.batch is None else self.batch.decode(),
                "messages": [[t, p.decode()] for t, p in self.messages]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Flush:
        return cls(int(d["session"]), int(d["seq"]), [int(i) for i in d["ids"]],
                   None if d["batch"] is None else str(d["batch"]).encode(), int(d["readings"]),
                   [(str(t), str(p).encode()) for t, p in d["messages"]])
