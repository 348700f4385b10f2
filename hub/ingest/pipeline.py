"""Batched decode and validation of telemetry payloads into line protocol, plus AQI points.

``Ingest.lines_for(messages)`` takes a list of ``(topic, payload)`` from MQTT and returns the lines to
write. It never raises for bad input: a bad topic, bad JSON, a gateway id that does not match the topic,
a duplicate ``(gateway, session, seq)`` (the gateway delivers at least once), or a reading that cannot
be written is counted in ``counters`` by reason and skipped; good readings of the same batch go on.

Values are range-checked again at the hub (the contract's ``check_ranges``); out-of-range values are
removed and counted. AQI points (measurement ``aqi``) are computed from raw PM readings with each
configured table; the table, pollutant, category and ``indicative=true`` are tags, the index is a field.

``zone_of(gateway) -> zone | None`` (optional) adds a ``zone`` tag to every reading and AQI point, so the
dashboards can select by zone. ``on_reading(gateway, zone, reading)`` (optional) sees every reading that was
written, after range checks (the hub's latest-state cache); it must not raise.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence

from contract import topics
from contract.codecs import telemetry as wire
from contract.codecs.validate import FLAG_OUT_OF_RANGE, check_ranges
from contract.errors import MalformedMessage
from contract.models import CompactBatch, CompactSeries, Event, Reading, TelemetryBatch
from hub.aqi import DEFAULT_TABLES, AqiError, compute
from hub.ingest import fastrows
from hub.ingest.compact import in_range, separators, series_lines
from hub.ingest.lineproto import NAME_RE, LineProtocolError, Point, reading_point, to_ms

AQI_POLLUTANTS = ("pm2_5", "pm10")


ZoneOf = Callable[[str], "str | None"]
OnReading = Callable[[str, "str | None", Reading], None]
OnRows = Callable[[str, "str | None", CompactSeries, wire.Rows], None]
Batch = TelemetryBatch | CompactBatch


class Ingest:
    def __init__(self, *, aqi_tables: Sequence[str] = DEFAULT_TABLES, dedup_window: int = 4096,
                 zone_of: ZoneOf | None = None, on_reading: OnReading | None = None,
                 on_rows: OnRows | None = None) -> None:
        self.aqi_tables = tuple(aqi_tables)
        self.zone_of = zone_of
        self.on_reading = on_reading
        self.on_rows = on_rows
        self._formats: dict[tuple, tuple[list[str], str]] = {}
        self._seps: dict[tuple, tuple[str, ...]] = {}
        self.counters: Counter[str] = Counter()
        self._heads: dict[tuple, str] = {}
        self._field_names: set[str] = set()
        self._seen: OrderedDict[tuple[str, int, int], None] = OrderedDict()
        self._dedup_window = dedup_window

    def _duplicate(self, batch: Batch) -> bool:
        key = (batch.gateway, batch.session, batch.seq)
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > self._dedup_window:
            self._seen.popitem(last=False)
        return False

    def decode(self, topic: str, payload: bytes) -> Batch | None:
        try:
            parsed = topics.parse(topic)
            if parsed.kind != "gw" or parsed.channel != topics.GwChannel.TELEMETRY:
                raise MalformedMessage("not_telemetry", topic=topic)
            batch = wire.decode(payload, topic=topic)
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

    def _zone(self, gateway: str) -> str | None:
        if self.zone_of is None:
            return None
        try:
            return self.zone_of(gateway) or None
        except Exception:  # noqa: BLE001 - a lookup bug must not lose readings: write them without a zone
            self.counters["zone_lookup_errors"] += 1
            return None

    def reading_lines(self, gateway: str, reading: Reading, zone: str | None = None) -> list[str]:
        metrics, removed = check_ranges(reading.metrics)
        if removed:
            self.counters["out_of_range_values"] += len(reading.metrics) - len(metrics)
        if not metrics:
            self.counters["rejected_readings"] += 1
            return []
        clean = reading
        if removed:
            clean = reading.model_copy(update={"metrics": metrics, "flags": (*reading.flags, FLAG_OUT_OF_RANGE)})
        try:
            out = [self._line(gateway, zone, clean, metrics)]
        except LineProtocolError as exc:
            self.counters[f"rejected_readings.{exc.reason}"] += 1
            return []
        if "pm2_5" in metrics or "pm10" in metrics:
            out += self.aqi_lines(gateway, clean, zone)
        self.counters["readings"] += 1
        if self.on_reading is not None:
            try:
                self.on_reading(gateway, zone, clean)
            except Exception:  # noqa: BLE001 - the cache must never cost a stored reading
                self.counters["on_reading_errors"] += 1
        return out

    def _line(self, gateway: str, zone: str | None, reading: Reading, metrics: dict[str, float]) -> str:
        """``reading_point(...).line()``, fast: the escaped measurement-and-tags head is built once per series
        (by ``Point`` itself) and cached; fields are finite floats already (``check_ranges``)."""
        head = self._head(gateway, zone, reading)
        good = self._field_names
        if not good.issuperset(metrics):
            for k in metrics:
                if k not in good:
                    if not NAME_RE.match(k):
                        raise LineProtocolError("bad_field_name", repr(k))
                    if len(good) < 10_000:
                        good.add(k)
        fields = ",".join([k + "=" + repr(v) for k, v in metrics.items()])
        return f"{head} {fields} {round(reading.ts * 1000)}"

    def _head(self, gateway: str, zone: str | None, reading: Reading | CompactSeries) -> str:
        """The escaped measurement-and-tags head of a series, built once (by ``Point`` itself) and cached."""
        key = (reading.kind, gateway, reading.device, zone, reading.flags)
        head = self._heads.get(key)
        if head is None:
            probe = Reading.model_construct(device=reading.device, kind=reading.kind, ts=0.0, metrics={"x": 0.0},
                                            flags=reading.flags)
            point = reading_point(gateway, probe, {"zone": zone} if zone else None)
            head = Point(point.measurement, {"x": 0.0}, 0, point.tags).line()[:-len(" x=0.0 0")]
            if len(self._heads) >= 100_000:
                self._heads.clear()
            self._heads[key] = head
        return head

    def aqi_lines(self, gateway: str, reading: Reading, zone: str | None = None) -> list[str]:
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
                if zone:
                    tags["zone"] = zone
                if r.beyond:
                    tags["beyond"] = "true"
                out.append(Point("aqi", {"index": float(r.value)}, to_ms(reading.ts), tags).line())
        return out

    def batch_text(self, batch: Batch) -> tuple[list[str], int]:
        """Lines for a batch the caller already decoded (the hub's MQTT dispatcher does that), as text chunks
        (each one or more ``\n``-joined lines) and their line count; ``([], 0)`` for a duplicate."""
        if self._duplicate(batch):
            self.counters["duplicate_batches"] += 1
            return [], 0
        self.counters["batches"] += 1
        if isinstance(batch, CompactBatch):
            return self._compact(batch)
        lines = self._readings(batch)
        return lines, len(lines)

    def batch_lines(self, batch: Batch) -> list[str]:
        """``batch_text`` one line per item."""
        chunks, n = self.batch_text(batch)
        return chunks if len(chunks) == n else [ln for c in chunks for ln in c.split("\n")]

    def _readings(self, batch: TelemetryBatch) -> list[str]:
        out: list[str] = []
        zone = self._zone(batch.gateway)
        for reading in batch.readings:
            out += self.reading_lines(batch.gateway, reading, zone)
        return out

    def _compact(self, batch: CompactBatch) -> tuple[list[str], int]:
        """Version 2: each series checked and converted in bulk (``hub.ingest.compact``); a series with a value
        out of range goes reading by reading, as version 1 does."""
        gateway, zone = batch.gateway, self._zone(batch.gateway)
        out: list[str] = []
        total = 0
        for series in batch.series:
            if fastrows.COMPILED:
                if (fast := self._fast(gateway, zone, series)) is not None:
                    text, fast_rows = fast
                    out.append(text)
                    total += fast_rows.n
                    self.counters["readings"] += fast_rows.n
                    self._seen_rows(gateway, zone, series, fast_rows)
                    continue
                self.counters["python_path_series"] += 1
            try:
                rows, cells = wire.parse_cells(series.rows, len(series.fields) + 1)
            except MalformedMessage as exc:
                self.counters[f"rejected_series.{exc.reason}"] += 1
                self.counters["rejected_readings"] += series.rows.count("\n") + 1
                continue
            try:
                head = self._head(gateway, zone, series)
            except LineProtocolError as exc:
                self.counters[f"rejected_readings.{exc.reason}"] += rows.n
                continue
            text = series_lines(head, series.fields, rows, cells, self._formats)
            if text is None:  # something out of range: the per-reading path removes and flags it
                for reading in wire.series_readings(series, rows):
                    lines = self.reading_lines(gateway, reading, zone)
                    out += lines
                    total += len(lines)
                continue
            out.append(text)
            total += rows.n
            self.counters["readings"] += rows.n
            if "pm2_5" in series.fields or "pm10" in series.fields:
                for reading in wire.series_readings(series, rows):
                    aqi = self.aqi_lines(gateway, reading, zone)
                    out += aqi
                    total += len(aqi)
            self._seen_rows(gateway, zone, series, rows)
        return out, total

    def _fast(self, gateway: str, zone: str | None, series: CompactSeries) -> tuple[str, fastrows.FastRows] | None:
        """The compiled path (``hub.ingest.fastrows``) for a plain series: every value in range, no PM (those
        need the per-reading AQI); None sends the series down the Python path, which counts whatever is wrong."""
        fields = series.fields
        if "pm2_5" in fields or "pm10" in fields:
            return None
        try:
            head = self._head(gateway, zone, series)
        except LineProtocolError:
            return None
        key = (head, fields)
        seps = self._seps.get(key)
        if seps is None:
            if len(self._seps) >= 10_000:
                self._seps.clear()
            seps = self._seps[key] = separators(head, fields)
        got = fastrows.series_text(series.rows, seps)
        return got if got is not None and in_range(fields, got[1]) else None

    def _seen_rows(self, gateway: str, zone: str | None, series: CompactSeries,
                   rows: wire.Rows | fastrows.FastRows) -> None:
        try:
            if self.on_rows is not None:
                self.on_rows(gateway, zone, series, rows)
            elif self.on_reading is not None:
                for reading in wire.series_readings(series, rows):
                    self.on_reading(gateway, zone, reading)
        except Exception:  # noqa: BLE001 - the cache must never cost a stored reading
            self.counters["on_reading_errors"] += 1

    def event_lines(self, event: Event) -> list[str]:
        """One ``event`` point per gateway event (measurement ``event``): gateway, device, kind and zone are
        tags; ``count`` = 1 and every finite numeric item of ``data`` are fields. Text in ``data`` is not
        stored (VictoriaMetrics drops string fields). A repeated ``(gateway, id)`` is written once."""
        key = (event.gateway, -1, hash(event.id))
        if key in self._seen:
            self.counters["duplicate_events"] += 1
            return []
        self._seen[key] = None
        if len(self._seen) > self._dedup_window:
            self._seen.popitem(last=False)
        fields: dict[str, float] = {"count": 1.0}
        for k, v in event.data.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and NAME_RE.match(k):
                fields[k] = float(v)
        zone = self._zone(event.gateway)
        tags = {"gateway": event.gateway, "device": event.device or "", "kind": event.kind, "zone": zone or ""}
        try:
            line = Point("event", fields, to_ms(event.ts), tags).line()
        except LineProtocolError as exc:
            self.counters[f"rejected_events.{exc.reason}"] += 1
            return []
        self.counters["events"] += 1
        return [line]

    def lines_for(self, messages: Iterable[tuple[str, bytes]]) -> list[str]:
        """Decode, validate and convert raw MQTT messages (one line per item)."""
        out: list[str] = []
        for topic, payload in messages:
            batch = self.decode(topic, payload)
            if batch is not None:
                if isinstance(batch, CompactBatch):
                    chunks, n = self._compact(batch)
                    out += chunks if len(chunks) == n else [ln for c in chunks for ln in c.split("\n")]
                else:
                    out += self._readings(batch)
        return out
