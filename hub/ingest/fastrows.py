"""The ingest hot path compiled: a version 2 series checked and turned into line protocol in one C pass.

``hub/ingest/_fastrows.c`` (built by ``setup.py``, optional) does what ``parse_cells`` + ``series_lines`` do for
a series that is well formed and entirely plain: ~11 us instead of ~70 us for 100 rows of 5 values
(docs/benchmarks.md, issue 12). It answers only when the pure-Python path would give the very same lines;
anything else (a malformed item, a value beyond a double, non-ASCII rows, a timestamp that is not plain
digits) returns None, and the caller takes the Python path, which decides and counts the reason. So the two
paths store the same lines; ``tests/ingest/test_fastrows.py`` holds the C one against the Python one.

Without a compiler at install time, or with ``DOZOR_PURE_INGEST=1`` in the environment (for comparisons),
``COMPILED`` is False and every series takes the Python path. ``/healthz`` reports it (``ingest.compiled``).
"""

from __future__ import annotations

import os

from pydantic_core import from_json

try:
    from hub.ingest import _fastrows
except ImportError:  # built without a C compiler: the pure-Python path, same lines
    _fastrows = None

COMPILED = _fastrows is not None and os.environ.get("DOZOR_PURE_INGEST", "") in ("", "0")


class FastRows:
    """A series the C pass checked: ``n``, ``width`` and ``bounds`` as ``contract.codecs.telemetry.Rows`` has
    them, ``newest`` (the first row with the largest timestamp) with its values as floats (``newest_values``), and ``values`` parsed only when someone asks
    (the per-reading views: the API's tail of recent readings)."""

    __slots__ = ("n", "width", "bounds", "newest", "newest_values", "_rows", "_values")

    def __init__(self, n: int, width: int, bounds: list[tuple[float | int, float | int]], newest: int,
                 newest_values: list[float], rows: str) -> None:
        self.n, self.width, self.bounds = n, width, bounds
        self.newest, self.newest_values = newest, newest_values
        self._rows = rows
        self._values: list[float | int] | None = None

    @property
    def values(self) -> list[float | int]:
        if self._values is None:
            self._values = from_json("[" + self._rows.replace("\n", ",") + "]", allow_inf_nan=False)
        return self._values

    @property
    def timestamps(self) -> list[int]:
        return self.values[self.width - 1::self.width]  # type: ignore[return-value]

    def column(self, k: int) -> list[float | int]:
        return self.values[k::self.width]



def series_text(rows: str, seps: tuple[str, ...]) -> tuple[str, FastRows] | None:
    """The series' lines and its checked rows, or None: take the Python path."""
    if not COMPILED:
        return None
    got = _fastrows.lines(rows, seps)
    if got is None:
        return None
    text, n, bounds, newest, newest_values = got
    return text, FastRows(n, len(seps), bounds, newest, newest_values, rows)
