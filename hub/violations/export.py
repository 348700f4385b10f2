"""Filters from query strings, the monthly report, CSV and GeoJSON exports of the register (pure functions)."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import UTC, datetime
from typing import Any

from hub.errors import RequestError
from hub.violations.register import Register

_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
EXPORT_COLUMNS = ("id", "time_utc", "gateway", "sensor", "zone", "lat", "lon", "distance_m", "start", "end",
                  "lafmax", "lafmax_75", "sel", "class", "suppressed", "suppression", "flags", "enforceable",
                  "signature", "state")


class BadFilter(RequestError):
    code = "bad_filter"


def parse_time(text: str | None, what: str, *, now: float | None = None) -> float | None:
    """``24h`` / ``30m`` / ``7d`` (that long ago), epoch seconds, or an ISO 8601 date/time (UTC if no offset)."""
    if text is None or text == "":
        return None
    text = text.strip()
    m = _REL.match(text)
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNIT[m.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadFilter(f"{what}={text!r}: use a duration (24h, 30m, 7d), epoch seconds or an ISO 8601 time "
                        "(2026-11-24T18:00Z)") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def month_range(month: str) -> tuple[float, float]:
    m = re.fullmatch(r"(\d{4})-(\d{2})", month.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise BadFilter(f"month={month!r}: expected YYYY-MM, e.g. 2026-11")
    y, mo = int(m.group(1)), int(m.group(2))
    start = datetime(y, mo, 1, tzinfo=UTC)
    end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def report(register: Register, month: str) -> dict[str, Any]:
    since, until = month_range(month)
    total, enforceable, suppressed, unverified = register.flag_counts(since, until)
    by_state: dict[str, int] = {}
    by_zone: dict[str, dict[str, int]] = {}
    for zone, state, n in register.counts(since, until, "zone"):
        by_zone.setdefault(zone or "", {})[state] = n
        by_state[state] = by_state.get(state, 0) + n
    by_class: dict[str, dict[str, int]] = {}
    for klass, state, n in register.counts(since, until, "class"):
        by_class.setdefault(klass, {})[state] = n
    top = [{"gateway": gw, "sensor": s, "zone": z, "events": n, "confirmed": int(c or 0), "max_lafmax_75": mx}
           for gw, s, z, n, c, mx in register.top_sensors(since, until)]
    return {"month": month.strip(), "from": iso(since), "to": iso(until), "total": total,
            "enforceable": enforceable, "suppressed": suppressed, "unverified": unverified, "by_state": by_state,
            "by_zone": by_zone, "by_class": by_class, "top_sensors": top}


def _cell(value: Any) -> Any:
    """CSV cells: lists joined with '+'; text that a spreadsheet would run as a formula is quoted with '."""
    if isinstance(value, list):
        value = "+".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def export_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (iso(row["start"]) if k == "time_utc" else row.get(k)) for k in EXPORT_COLUMNS}


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _cell(v) for k, v in export_row(row).items()})
    return buf.getvalue()


def to_geojson(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A FeatureCollection; events without coordinates have ``geometry: null`` (valid GeoJSON, RFC 7946)."""
    feats = []
    for row in rows:
        geom = None
        if row.get("lat") is not None and row.get("lon") is not None:
            geom = {"type": "Point", "coordinates": [row["lon"], row["lat"]]}
        feats.append({"type": "Feature", "id": row["id"], "geometry": geom, "properties": export_row(row)})
    return {"type": "FeatureCollection", "features": feats}
