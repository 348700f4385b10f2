"""InfluxDB line protocol, written by hand (no Point objects: serialisation is the hot path).

    <measurement>[,<tag>=<value>...] <field>=<float>[,<field>=<float>...] <timestamp ms>

Rules kept here:
- Escaping: measurement escapes ``,`` and space; tag keys, tag values and field keys escape ``,``, ``=``
  and space. Newlines, control characters and backslashes are refused (``LineProtocolError``): they are
  never legitimate in dozor ids and a trailing backslash would escape the separator after it.
- Text goes in tags only. Every field is a float (no ``i`` suffix, no strings, no booleans):
  VictoriaMetrics stores a string field as 0, and InfluxDB 1.x refuses a field whose type changes.
  NaN and infinities are refused.
- Naming: the measurement is the reading's device kind (``sds011``, ``bme280``, ``noise_node``, ``health``)
  and field keys are metric names (``pm2_5``); VictoriaMetrics turns them into ``sds011_pm2_5``. Both must
  match ``[a-z][a-z0-9_]*``. Flags become one tag ``flags`` (sorted, joined with ``+``).
- Timestamps are integer milliseconds (write with ``precision=ms``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from contract.models import Reading, TelemetryBatch
from hub.errors import HubError

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")
_MEAS_ESC = str.maketrans({",": r"\,", " ": r"\ "})
_TAG_ESC = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


class LineProtocolError(HubError):
    """A point cannot be written as line protocol. ``reason`` is short and safe as a counter label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"line protocol: {reason}{': ' + detail if detail else ''}")


def _check_text(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise LineProtocolError("empty_text", what)
    if _FORBIDDEN.search(value):
        raise LineProtocolError("bad_character", f"{what} {value!r}")
    return value


def measurement_name(kind: str) -> str:
    name = str(kind).replace("-", "_").lower()
    if not NAME_RE.match(name):
        raise LineProtocolError("bad_measurement", repr(kind))
    return name


def escape_measurement(name: str) -> str:
    return _check_text(name, "measurement").translate(_MEAS_ESC)


def escape_tag(text: str, what: str = "tag") -> str:
    return _check_text(text, what).translate(_TAG_ESC)


def format_float(value: float) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LineProtocolError("not_a_number", repr(value))
    v = float(value)
    if not math.isfinite(v):
        raise LineProtocolError("not_finite", repr(value))
    return repr(v)


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    fields: Mapping[str, float]
    ts_ms: int
    tags: Mapping[str, str] = field(default_factory=dict)

    def line(self) -> str:
        if not self.fields:
            raise LineProtocolError("no_fields", self.measurement)
        head = escape_measurement(self.measurement)
        tags = "".join(f",{escape_tag(k, 'tag key')}={escape_tag(v, f'tag {k}')}"
                       for k, v in sorted(self.tags.items()) if v != "")
        fields = ",".join(f"{escape_tag(k, 'field key')}={format_float(v)}" for k, v in self.fields.items())
        return f"{head}{tags} {fields} {int(self.ts_ms)}"


def to_ms(ts: float) -> int:
    return int(round(ts * 1000))


def reading_point(gateway: str, reading: Reading, extra_tags: Mapping[str, str] | None = None) -> Point:
    kind = getattr(reading.kind, "value", reading.kind)
    for key in reading.metrics:
        if not NAME_RE.match(key):
            raise LineProtocolError("bad_field_name", repr(key))
    tags = {"gateway": gateway, "device": reading.device, **(extra_tags or {})}
    if reading.flags:
        tags["flags"] = "+".join(sorted(set(reading.flags)))
    return Point(measurement_name(kind), dict(reading.metrics), to_ms(reading.ts), tags)


def batch_lines(batch: TelemetryBatch) -> list[str]:
    """All readings of one batch as lines (raises LineProtocolError on the first bad reading)."""
    return [reading_point(batch.gateway, r).line() for r in batch.readings]


def lines(points: Iterable[Point]) -> list[str]:
    return [p.line() for p in points]
