"""A very small Grafana dashboard builder: plain dicts, raw InfluxQL targets, deterministic output.

Panels are laid out left to right on Grafana's 24-column grid and wrap to the next row; ids are assigned in
order. ``render`` serialises with sorted keys, so the same definitions always give the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

DATASOURCE_UID = "dozor-influxdb"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39  # Grafana 11.x
GRID_WIDTH = 24


def target(query: str, ref: str = "A", *, alias: str = "", table: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DATASOURCE, "query": query, "rawQuery": True, "refId": ref,
                         "resultFormat": "table" if table else "time_series"}
    if alias:
        t["alias"] = alias
    return t


def steps(*pairs: tuple[float | None, str]) -> dict[str, Any]:
    """Absolute thresholds: (None, base colour), then (from value, colour)..."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in pairs]}


def value_mappings(mapping: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    """Numbers to words and colours (one 'value' mapping)."""
    return [{"type": "value", "options": {str(k): {"text": text, "color": colour, "index": i}
                                          for i, (k, (text, colour)) in enumerate(sorted(mapping.items()))}}]


def panel(kind: str, title: str, targets: list[dict[str, Any]], *, w: int = 12, h: int = 8,
          description: str = "", unit: str = "", thresholds: dict[str, Any] | None = None,
          mappings: list[dict[str, Any]] | None = None, custom: dict[str, Any] | None = None,
          options: dict[str, Any] | None = None, min: float | None = None, max: float | None = None,
          decimals: int | None = None) -> dict[str, Any]:
    defaults: dict[str, Any] = {"custom": custom or {}, "mappings": mappings or []}
    if unit:
        defaults["unit"] = unit
    if thresholds is not None:
        defaults["thresholds"] = thresholds
    for key, v in (("min", min), ("max", max), ("decimals", decimals)):
        if v is not None:
            defaults[key] = v
    p: dict[str, Any] = {"type": kind, "title": title, "datasource": DATASOURCE, "targets": targets,
                         "fieldConfig": {"defaults": defaults, "overrides": []}, "options": options or {},
                         "gridPos": {"w": w, "h": h, "x": 0, "y": 0}}
    if description:
        p["description"] = description
    return p


def query_variable(name: str, label: str, query: str, *, multi: bool = True) -> dict[str, Any]:
    """A query variable with an 'All' option matching everything (also series without the tag)."""
    return {"name": name, "label": label, "type": "query", "datasource": DATASOURCE, "query": query,
            "definition": query, "refresh": 2, "multi": multi, "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [], "regex": "",
            "sort": 1, "hide": 0, "skipUrlSync": False}


def annotation(name: str, query: str, *, text_column: str, tags_column: str, colour: str) -> dict[str, Any]:
    return {"name": name, "datasource": DATASOURCE, "enable": True, "hide": False, "iconColor": colour,
            "query": query, "textColumn": text_column, "tagsColumn": tags_column}


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    variables: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    panels: list[dict[str, Any]] = field(default_factory=list)
    refresh: str = "30s"
    time_from: str = "now-6h"

    def add(self, *panels: dict[str, Any]) -> Dashboard:
        self.panels.extend(panels)
        return self

    def _layout(self) -> list[dict[str, Any]]:
        out, x, y, row_h = [], 0, 0, 0
        for pid, p in enumerate(self.panels, start=1):
            w, h = p["gridPos"]["w"], p["gridPos"]["h"]
            if x + w > GRID_WIDTH:
                x, y, row_h = 0, y + row_h, 0
            out.append({**p, "id": pid, "gridPos": {"w": w, "h": h, "x": x, "y": y}})
            x, row_h = x + w, max(row_h, h)
        return out

    def to_dict(self) -> dict[str, Any]:
        builtin = {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                   "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                   "type": "dashboard"}
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": ["dozor"],
            "editable": True, "graphTooltip": 1, "refresh": self.refresh, "schemaVersion": SCHEMA_VERSION,
            "time": {"from": self.time_from, "to": "now"}, "timezone": "", "version": 1,
            "links": [{"type": "dashboards", "tags": ["dozor"], "asDropdown": True, "title": "dozor",
                       "includeVars": False, "keepTime": True}],
            "annotations": {"list": [builtin, *self.annotations]},
            "templating": {"list": self.variables},
            "panels": self._layout(),
        }


def render(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
