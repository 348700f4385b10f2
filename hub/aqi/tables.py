"""Named, versioned air-quality index tables (data only). Concentrations are ug/m3.

- ``epa_2024``: US EPA AQI after the 2024 PM NAAQS revision (in force 6 May 2024). PM2.5 is truncated to
  0.1 and PM10 to an integer before lookup; 24-hour averages. Above the last breakpoint the index is
  "beyond the AQI" and is reported as 500 with ``beyond=True``.
- ``epa_2012``: the pre-2024 EPA table, only to reinterpret history (many apps still use it).
- ``eaqi_2024``: the current European Air Quality Index bands (revised to the WHO 2021 guidelines,
  ETC HE Report 2024/17, Table 5.2, 1-hour reference). Six levels; the EEA defines bands, not numbers.
  Decision: band upper edges are inclusive (PM2.5 5.0 is "good", 5.01 is "fair").
- ``eaqi_2017``: the superseded five-level EEA table, only to reinterpret history.

Low-cost sensors give an *indicative* index; the hub labels it so. Raw concentrations are what is stored,
so indices can be recomputed when a table changes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Band:
    c_lo: float
    c_hi: float
    i_lo: int  # numeric tables: index range; banded tables: level (i_lo == i_hi)
    i_hi: int
    category: str
    colour: str


@dataclass(frozen=True, slots=True)
class IndexTable:
    name: str
    numeric: bool  # True: a 0..500 number by linear interpolation; False: a band level 1..n
    decimals: dict[str, int]  # truncation before lookup (numeric tables)
    bands: dict[str, tuple[Band, ...]]
    averaging: str
    source: str


EPA_CATEGORIES = [("good", "#00E400"), ("moderate", "#FFFF00"), ("unhealthy_sensitive", "#FF7E00"),
                  ("unhealthy", "#FF0000"), ("very_unhealthy", "#8F3F97"), ("hazardous", "#7E0023")]
EPA_INDEX = [(0, 50), (51, 100), (101, 150), (151, 200), (201, 300), (301, 500)]


def _epa(conc: list[tuple[float, float]]) -> tuple[Band, ...]:
    return tuple(Band(lo, hi, ilo, ihi, cat, col)
                 for (lo, hi), (ilo, ihi), (cat, col) in zip(conc, EPA_INDEX, EPA_CATEGORIES, strict=True))


EPA_PM10 = _epa([(0, 54), (55, 154), (155, 254), (255, 354), (355, 424), (425, 604)])

EPA_2024 = IndexTable(
    name="epa_2024", numeric=True, decimals={"pm2_5": 1, "pm10": 0},
    bands={"pm2_5": _epa([(0.0, 9.0), (9.1, 35.4), (35.5, 55.4), (55.5, 125.4), (125.5, 225.4),
                          (225.5, 325.4)]),
           "pm10": EPA_PM10},
    averaging="24h", source="https://www.epa.gov/system/files/documents/2024-02/pm-naaqs-air-quality-index-fact-sheet.pdf")

EPA_2012 = IndexTable(
    name="epa_2012", numeric=True, decimals={"pm2_5": 1, "pm10": 0},
    bands={"pm2_5": _epa([(0.0, 12.0), (12.1, 35.4), (35.5, 55.4), (55.5, 150.4), (150.5, 250.4),
                          (250.5, 500.4)]),
           "pm10": EPA_PM10},
    averaging="24h", source="US EPA AQI technical assistance document (2018), superseded 2024-05-06")

EEA_LEVELS = [("good", "#50F0E6"), ("fair", "#50CCAA"), ("moderate", "#F0E641"), ("poor", "#FF5050"),
              ("very_poor", "#960032"), ("extremely_poor", "#7D2181")]


def _eea(edges: list[float], levels: list[tuple[str, str]] = EEA_LEVELS) -> tuple[Band, ...]:
    lows = [0.0, *edges[:-1]]
    return tuple(Band(lo, hi, n, n, cat, col)
                 for n, (lo, hi, (cat, col)) in enumerate(zip(lows, edges, levels, strict=True), start=1))


EAQI_2024 = IndexTable(
    name="eaqi_2024", numeric=False, decimals={},
    bands={"pm2_5": _eea([5, 15, 50, 90, 140, 800]), "pm10": _eea([15, 45, 120, 195, 270, 1200]),
           "no2": _eea([10, 25, 60, 100, 150, 1000]), "o3": _eea([60, 100, 120, 160, 180, 800]),
           "so2": _eea([20, 40, 125, 190, 275, 1250])},
    averaging="1h", source="EEA European Air Quality Index, ETC HE Report 2024/17 Table 5.2")

EEA_2017_LEVELS = [("very_good", "#50F0E6"), ("good", "#50CCAA"), ("medium", "#F0E641"), ("poor", "#FF5050"),
                   ("very_poor", "#960032")]

EAQI_2017 = IndexTable(
    name="eaqi_2017", numeric=False, decimals={},
    bands={"pm2_5": _eea([10, 20, 25, 50, 800], EEA_2017_LEVELS),
           "pm10": _eea([20, 35, 50, 100, 1200], EEA_2017_LEVELS)},
    averaging="24h running mean (PM)", source="http://discomap.eea.europa.eu/map/AQI/Viewer/ (superseded)")

TABLES: dict[str, IndexTable] = {t.name: t for t in (EPA_2024, EPA_2012, EAQI_2024, EAQI_2017)}
DEFAULT_TABLES = ("epa_2024", "eaqi_2024")
