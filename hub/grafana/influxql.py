"""Grafana-style interpolation of raw InfluxQL, and every query a dashboard runs.

Grafana's InfluxDB datasource replaces, before it sends a raw query:

- ``$timeFilter`` with ``time >= <from>ms and time <= <to>ms``;
- ``$__interval`` with the rounded interval for the range (at least the datasource's minimum interval),
  ``$__interval_ms`` with the same in milliseconds;
- ``$var`` / ``${var}`` / ``[[var]]`` of a multi-value variable, inside a regex, with the regex-escaped value,
  several values as ``(a|b)``, and "All" with the variable's ``allValue``.

This module does the same, so tests can run a dashboard's queries against a real InfluxDB.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub.errors import HubError

ALL = "$__all"
# Grafana's rounding targets (rangeutil.roundInterval), in ms.
_NICE_MS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 20_000, 30_000, 60_000, 120_000,
            300_000, 600_000, 900_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000,
            43_200_000, 86_400_000, 604_800_000)
_VAR = re.compile(r"\$\{(\w+)\}|\[\[(\w+)\]\]|\$(\w+)")
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|{}\[\]/]")


class InterpolationError(HubError):
    """A query names a variable the dashboard does not define."""


def format_ms(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def interval_ms(from_ms: int, to_ms: int, *, max_points: int = 1000, min_interval_ms: int = 10_000) -> int:
    raw = max(1, (to_ms - from_ms) // max(1, max_points))
    nice = next((n for n in _NICE_MS if n >= raw), _NICE_MS[-1])
    return max(nice, min_interval_ms)


def regex_escape(value: str) -> str:
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def interpolate(query: str, *, from_ms: int, to_ms: int, variables: Mapping[str, Sequence[str]] | None = None,
                all_values: Mapping[str, str] | None = None, interval: int | None = None) -> str:
    """``variables``: name -> selected values (``[ALL]`` for All); ``all_values``: name -> allValue."""
    variables = variables or {}
    all_values = all_values or {}
    step = interval if interval is not None else interval_ms(from_ms, to_ms)
    builtins = {"timeFilter": f"time >= {from_ms}ms and time <= {to_ms}ms", "__interval": format_ms(step),
                "__interval_ms": str(step)}

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in builtins:
            return builtins[name]
        if name not in variables:
            raise InterpolationError(f"query uses ${name}, which the dashboard does not define: {query}")
        values = list(variables[name])
        if ALL in values:
            return all_values.get(name, ".*")
        if len(values) == 1:
            return regex_escape(values[0])
        return "(" + "|".join(regex_escape(v) for v in values) + ")"

    return _VAR.sub(sub, query)


@dataclass(frozen=True, slots=True)
class DashboardQuery:
    kind: str  # "panel", "variable" or "annotation"
    name: str  # panel title / variable name / annotation name, with the target's refId for panels
    query: str


def queries(dashboard: Mapping[str, Any]) -> Iterator[DashboardQuery]:
    for v in dashboard.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            yield DashboardQuery("variable", v["name"], v["query"])
    for a in dashboard.get("annotations", {}).get("list", []):
        if "query" in a:
            yield DashboardQuery("annotation", a["name"], a["query"])
    for p in dashboard.get("panels", []):
        for t in p.get("targets", []):
            yield DashboardQuery("panel", f'{p["title"]} [{t["refId"]}]', t["query"])


def all_selected(dashboard: Mapping[str, Any]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Every variable at "All", as Grafana opens the dashboard: (variables, all_values)."""
    names = [v for v in dashboard.get("templating", {}).get("list", [])]
    return ({v["name"]: [ALL] for v in names}, {v["name"]: v.get("allValue") or ".*" for v in names})
