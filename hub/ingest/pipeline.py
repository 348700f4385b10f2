"""Batched decode and validation of telemetry payloads into line protocol, plus AQI points.

``Ingest.lines_for(messages)`` takes a list of ``(topic, payload)`` from MQTT and returns the lines to
write. It never raises for bad input: a bad topic, bad JSON, a gateway id that does not match the topic,
a duplicate ``(gateway, session, seq)`` (the gateway delivers at least once), or a reading that cannot
be written is counted in ``counters`` by reason and skipped; good readings of the same batch go on.

Values are range-checked again at the hub (the contract's ``check_ranges``); out-of-range values are
removed and counted. AQI points (measurement ``aqi``) are computed from raw PM readings with each
configured table; the table, pollutant, category and ``indicative=true`` are tags, the index is a field.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence

from contract import topics
from contract.codecs.validate import FLAG_OUT_OF_RANGE, check_ranges
from contract.errors import MalformedMessage
from contract.models import Reading, TelemetryBatch, decode
from hub.aqi import DEFAULT_TABLES, AqiError, compute
from hub.ingest.lineproto import LineProtocolError, Point, reading_point, to_ms

AQI_POLLUTANTS = ("pm2_5", "pm10")


class Ingest:
    def __init__(self, *, aqi_tables: Sequence[str] = DEFAULT_TABLES, dedup_window: int = 4096) -> None:
        self.aqi_tables = tuple(aqi_tables)
        self.counters: Counter[str] = Counter()
        self._seen: OrderedDict[tuple[str, int, int], None] = OrderedDict()
        self._dedup_window = dedup_window

    def _duplicate(self, batch: TelemetryBatch) -> bool:
        key = (batch.gateway, batch.session, batch.seq)
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > self._dedup_window:
            self._seen.popitem(last=False)
        return False

    def decode(self, topic: str, payload: bytes) -> TelemetryBatch | None:
        try:
            parsed = topics.parse(topic)
            if parsed.kind != "gw" or parsed.channel != topics.GwChannel.TELEMETRY:
                raise MalformedMessage("not_telemetry", topic=topic)
            batch = decode(TelemetryBatch, payload, topic=topic)
        except MalformedMessage as exc:
            self.counters[f"malformed.{exc.reason}"] += 1
            return None
        if batch.gateway != parsed.ident:
            self.counters["malformed.gateway_mismatch"] += 1
            return None
        if self._duplicate(batch):
            self.counters["duplicate_batches"] += 1
            return None
        self.counters["batches"] += 1
        return batch

    def reading_lines(self, gateway: str, reading: Reading) -> list[str]:
        metrics, removed = check_ranges(reading.metrics)
        if removed:
            self.counters["out_of_range_values"] += len(reading.metrics) - len(metrics)
        if not metrics:
            self.counters["rejected_readings"] += 1
            return []
        flags = (*reading.flags, FLAG_OUT_OF_RANGE) if removed else reading.flags
        clean = reading.model_copy(update={"metrics": metrics, "flags": flags})
        try:
            out = [reading_point(gateway, clean).line()]
        except LineProtocolError as exc:
            self.counters[f"rejected_readings.{exc.reason}"] += 1
            return []
        out += self.aqi_lines(gateway, clean)
        self.counters["readings"] += 1
        return out

    def aqi_lines(self, gateway: str, reading: Reading) -> list[str]:
        out: list[str] = []
        for pollutant in AQI_POLLUTANTS:
            if pollutant not in reading.metrics:
                continue
            for name in self.aqi_tables:
                try:
                    r = compute(name, pollutant, reading.metrics[pollutant])
                except AqiError:
                    self.counters["aqi_errors"] += 1
                    continue
                tags = {"gateway": gateway, "device": reading.device, "table": r.table, "pollutant": pollutant,
                        "category": r.category, "indicative": "true"}
                if r.beyond:
                    tags["beyond"] = "true"
                out.append(Point("aqi", {"index": float(r.value)}, to_ms(reading.ts), tags).line())
        return out

    def batch_lines(self, batch: TelemetryBatch) -> list[str]:
        """Lines for a batch the caller already decoded (the hub's MQTT dispatcher does that)."""
        if self._duplicate(batch):
            self.counters["duplicate_batches"] += 1
            return []
        self.counters["batches"] += 1
        return self._readings(batch)

    def _readings(self, batch: TelemetryBatch) -> list[str]:
        out: list[str] = []
        for reading in batch.readings:
            out += self.reading_lines(batch.gateway, reading)
        return out

    def lines_for(self, messages: Iterable[tuple[str, bytes]]) -> list[str]:
        """Decode, validate and convert raw MQTT messages."""
        out: list[str] = []
        for topic, payload in messages:
            batch = self.decode(topic, payload)
            if batch is not None:
                out += self._readings(batch)
        return out
