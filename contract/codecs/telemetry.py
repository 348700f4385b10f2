"""Telemetry batches on the wire, both versions (sans-IO): ``encode`` (wire version 2, what gateways send),
``decode`` (either version, for the hub's bulk path), ``decode_batch`` (either version as a per-reading
``TelemetryBatch``, for tools and tests) and ``parse_rows`` / ``parse_cells`` (the bulk check of one compact
series).

Version 1 (``contract.models.TelemetryBatch``) is one JSON object per reading. Version 2
(``contract.models.CompactBatch``) groups the readings of one device with the same kind, flags and metric names
into a *series* and writes its values as text rows, so the hub checks a whole series with a few C-level calls
and passes the numbers on to the store as they came, instead of building one object per reading::

    {"v":2,"gateway":"gw-1","session":7,"seq":12,"historical":false,"series":[
      {"device":"noise-1","kind":"noise_node","flags":[],"fields":["laeq","lafmax"],
       "rows":"45.25,61.0,1767225600000\\n46.5,60.75,1767225601000"}]}

A row is the reading's values in ``fields`` order, then its timestamp in integer milliseconds since the epoch,
comma-separated; rows are separated by ``\\n`` (no trailing newline). Every value is a JSON number (no
spaces, no ``NaN``/``Infinity``, no leading ``+`` or zeros); the timestamp is a non-negative integer of at most
13 digits. ``fields`` and ``flags`` match ``[a-z][a-z0-9_]{0,63}``. The identity ``(gateway, session, seq)``
and ``historical`` mean what they mean in version 1. A MicroPython sender needs only ``repr`` and ``join``.

What a receiver refuses (``MalformedMessage`` with a short reason): ``bad_rows`` (a character outside
``0-9 e E . + - , \\n``), ``bad_width`` (a row without exactly ``len(fields) + 1`` items), ``bad_number`` (an
item that is not a JSON number, or beyond a float), ``bad_timestamp``. Values outside a metric's physical
range are not a format error: the receiver removes and flags them as for version 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import repeat

from pydantic_core import from_json

from contract.errors import MalformedMessage
from contract.models import MAX_PAYLOAD_BYTES, CompactBatch, CompactSeries, Reading, TelemetryBatch
from contract.models import decode as _decode

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TS_MAX_MS = 9_999_999_999_999  # 13 digits: up to the year 2286
_ALLOWED = str.maketrans("", "", "0123456789eE.+-,\n")  # deleting the allowed characters must leave nothing
_V2 = re.compile(rb'"v"\s*:\s*2\s*[,}]')


class NotCompactable(ValueError):
    """A reading that version 2 cannot carry (a metric or flag name outside ``NAME_RE``, a value that is not a
    finite number, no metrics, a timestamp before 1970): the sender uses version 1 for that batch."""


@dataclass(frozen=True, slots=True)
class Rows:
    """One series, checked. ``values`` is row-major (``n`` rows of ``width`` numbers, the timestamp last);
    ``text`` is the rows with ``\\n`` turned into ``,`` (``text.split(",")`` are the items as sent);
    ``bounds[k]`` is the (min, max) of column ``k``."""

    n: int
    width: int
    text: str
    values: list[float | int]
    bounds: list[tuple[float | int, float | int]]

    def column(self, k: int) -> list[float | int]:
        return self.values[k::self.width]

    @property
    def timestamps(self) -> list[int]:
        return self.values[self.width - 1::self.width]  # type: ignore[return-value]

    def newest_values(self) -> list[float]:
        """The values (timestamp left out) of the first row with the largest timestamp, as floats."""
        w = self.width
        i = self.timestamps.index(self.bounds[-1][1])
        return [float(v) for v in self.values[i * w:i * w + w - 1]]


def parse_rows(rows: str, width: int) -> Rows:
    """Check a series' rows in bulk (a handful of C-level passes, no object per row); MalformedMessage if bad."""
    return parse_cells(rows, width)[0]


def parse_cells(rows: str, width: int) -> tuple[Rows, list[str]]:
    """``parse_rows``, and the rows split at their commas (``cells``: the items as sent, except that the last
    item of a row and the first of the next one share a cell, ``"<ts>\n<first value>"``), which a receiver can
    reuse to pass the numbers on as text (``hub.ingest.compact``) without splitting them again."""
    if not rows or rows.translate(_ALLOWED):
        raise MalformedMessage("bad_rows", detail="a character outside 0-9 e E . + - , newline")
    cells = rows.split(",")
    n = rows.count("\n") + 1
    commas = width - 1
    # every row has ``commas`` commas exactly: as many cells as that makes, and each row's newline in the cell
    # where it must fall (cell k * commas for row k); the rows' n - 1 newlines then each sit in their own cell
    if len(cells) != n * commas + 1 or (commas and n > 1 and not all(
            map(str.__contains__, cells[commas:-1:commas], repeat("\n", n - 1)))):
        raise MalformedMessage("bad_width", detail=f"every row needs {width} items")
    text = rows.replace("\n", ",")
    try:
        values = from_json("[" + text + "]", allow_inf_nan=False)  # pydantic's parser: ~2.5x json.loads
    except ValueError:  # not a JSON number, or an integer beyond the parser's limit
        raise MalformedMessage("bad_number", detail="an item is not a JSON number") from None
    bounds = []
    for k in range(width):
        col = values[k::width]
        col.sort()  # a column's extremes: list.sort compares floats (or ints) type-specialised, ~3x min() + max()
        lo, hi = col[0], col[-1]
        try:
            float(lo), float(hi)
        except OverflowError:
            raise MalformedMessage("bad_number", detail=f"column {k} beyond a float") from None
        bounds.append((lo, hi))
    ts = values[width - 1::width]
    lo, hi = bounds[-1]
    if lo < 0 or hi > TS_MAX_MS or set(map(type, ts)) != {int}:
        raise MalformedMessage("bad_timestamp", detail="timestamps are integer milliseconds, 0..9999999999999")
    return Rows(n, width, text, values, bounds), cells


def series_readings(series: CompactSeries, rows: Rows) -> list[Reading]:
    """The series as one ``Reading`` per row (the slow, per-reading view)."""
    fields, width, values = series.fields, rows.width, rows.values
    out = []
    for i in range(0, rows.n * width, width):
        metrics = {f: float(v) for f, v in zip(fields, values[i:i + width - 1], strict=True)}
        out.append(Reading.model_construct(device=series.device, kind=series.kind, ts=values[i + width - 1] / 1000,
                                           metrics=metrics, flags=series.flags))
    return out


def _num(value: float) -> str:
    v = float(value)
    if not math.isfinite(v):
        raise NotCompactable(f"value {value!r} is not finite")
    return repr(v)


def encode(gateway: str, session: int, seq: int, readings: Iterable[Reading], *,
           historical: bool | None = None) -> bytes:
    """A version 2 batch of ``readings`` (grouped by device, kind, flags and metric names; order kept within
    each group). Raises NotCompactable for a reading version 2 cannot carry."""
    groups: dict[tuple, list[str]] = {}
    for r in readings:
        fields = tuple(r.metrics)
        kind = getattr(r.kind, "value", r.kind)
        key = (r.device, kind, tuple(r.flags), fields)
        rows = groups.get(key)
        if rows is None:
            if not fields:
                raise NotCompactable(f"reading of {r.device} has no metrics")
            for name in (*fields, *r.flags):
                if not NAME_RE.match(name):
                    raise NotCompactable(f"name {name!r} is not [a-z][a-z0-9_]*")
            rows = groups[key] = []
        ts = round(r.ts * 1000)
        if not 0 <= ts <= TS_MAX_MS:
            raise NotCompactable(f"timestamp {r.ts!r} out of range")
        rows.append(",".join([*map(_num, r.metrics.values()), str(ts)]))
    if not groups:
        raise NotCompactable("no readings")
    series = tuple(CompactSeries(device=d, kind=k, flags=fl, fields=f, rows="\n".join(rows))
                   for (d, k, fl, f), rows in groups.items())
    return CompactBatch(gateway=gateway, session=session, seq=seq, series=series,
                        historical=historical).to_bytes()


def decode(payload: bytes | str, *, topic: str | None = None) -> TelemetryBatch | CompactBatch:
    """Either version, as its own model (version 2 rows are checked later, per series, by ``parse_rows``)."""
    if isinstance(payload, str):
        payload = payload.encode()
    if payload.startswith(b'{"v":2,'):  # what ``encode`` writes: straight to the compact model
        return _decode(CompactBatch, payload, topic=topic)
    try:
        return _decode(TelemetryBatch, payload, topic=topic)
    except MalformedMessage:
        if len(payload) <= MAX_PAYLOAD_BYTES and _V2.search(payload):  # version 2 with its keys in another order
            return _decode(CompactBatch, payload, topic=topic)
        raise


def to_batch(compact: CompactBatch) -> TelemetryBatch:
    """A version 2 batch as the per-reading model (every series checked; MalformedMessage if one is bad)."""
    readings: list[Reading] = []
    for s in compact.series:
        readings += series_readings(s, parse_rows(s.rows, len(s.fields) + 1))
    return TelemetryBatch.model_construct(v=1, gateway=compact.gateway, session=compact.session, seq=compact.seq,
                                          readings=tuple(readings), historical=compact.historical)


def decode_batch(payload: bytes | str, *, topic: str | None = None) -> TelemetryBatch:
    """Either version as a per-reading ``TelemetryBatch`` (tools, tests, the simulators' receivers)."""
    batch = decode(payload, topic=topic)
    return to_batch(batch) if isinstance(batch, CompactBatch) else batch
