"""Compute air-quality indices from raw concentrations with a named table (pure functions)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from hub.aqi.tables import TABLES, Band, IndexTable
from hub.errors import HubError


class AqiError(HubError):
    """Unknown table or pollutant, or a concentration that is not a finite number >= 0."""


@dataclass(frozen=True, slots=True)
class IndexResult:
    table: str
    pollutant: str
    value: int  # numeric tables: 0..500; banded tables: level 1..n
    category: str
    colour: str
    beyond: bool = False  # above the table's last breakpoint (reported at the top value)


def table(name: str | IndexTable) -> IndexTable:
    if isinstance(name, IndexTable):
        return name
    try:
        return TABLES[name]
    except KeyError:
        raise AqiError(f"unknown AQI table {name!r}; known: {sorted(TABLES)}") from None


def _truncate(c: float, decimals: int) -> Decimal:
    return Decimal(repr(c)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_DOWN)


def compute(table_name: str | IndexTable, pollutant: str, concentration: float) -> IndexResult:
    t = table(table_name)
    bands = t.bands.get(pollutant)
    if bands is None:
        raise AqiError(f"table {t.name} has no {pollutant!r}; it covers {sorted(t.bands)}")
    if not isinstance(concentration, (int, float)) or not math.isfinite(concentration) or concentration < 0:
        raise AqiError(f"{pollutant} concentration must be a finite number >= 0, not {concentration!r}")
    if t.numeric:
        c = _truncate(float(concentration), t.decimals.get(pollutant, 1))
        for b in bands:
            if Decimal(repr(b.c_lo)) <= c <= Decimal(repr(b.c_hi)):
                return IndexResult(t.name, pollutant, _interpolate(b, c), b.category, b.colour)
        top = bands[-1]
        return IndexResult(t.name, pollutant, top.i_hi, top.category, top.colour, beyond=True)
    for b in bands:
        if concentration <= b.c_hi:
            return IndexResult(t.name, pollutant, b.i_lo, b.category, b.colour)
    top = bands[-1]
    return IndexResult(t.name, pollutant, top.i_lo, top.category, top.colour, beyond=True)


def _interpolate(b: Band, c: Decimal) -> int:
    lo, hi = Decimal(repr(b.c_lo)), Decimal(repr(b.c_hi))
    value = (Decimal(b.i_hi - b.i_lo) / (hi - lo)) * (c - lo) + b.i_lo
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def overall(table_name: str | IndexTable, concentrations: dict[str, float]) -> IndexResult:
    """The worst pollutant decides (both EPA and EEA). Pollutants the table lacks are ignored."""
    t = table(table_name)
    results = [compute(t, p, c) for p, c in concentrations.items() if p in t.bands]
    if not results:
        raise AqiError(f"none of {sorted(concentrations)} is covered by {t.name}")
    return max(results, key=lambda r: (r.value, r.beyond))
