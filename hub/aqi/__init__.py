"""Air-quality indices from raw ug/m3, with named, versioned tables (``epa_2024``, ``eaqi_2024``, ...)."""

from hub.aqi.compute import AqiError, IndexResult, compute, overall, table
from hub.aqi.tables import DEFAULT_TABLES, TABLES, Band, IndexTable

__all__ = ["DEFAULT_TABLES", "TABLES", "AqiError", "Band", "IndexResult", "IndexTable", "compute", "overall",
           "table"]
