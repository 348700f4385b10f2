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
    """A series the C pass checked: ``n``, ``width``, ``bounds`` and ``newest_values()`` as
    ``contract.codecs.telemetry.Rows`` has them (the newest row found by the same pass), and ``values`` parsed only
    when someone asks (the per-reading views: the API's tail of recent readings)."""

    __slots__ = ("n", "width", "bounds", "_newest", "_rows", "_values")

    def __init__(self, n: int, width: int, bounds: list[tuple[float | int, float | int]], newest: list[float],
                 rows: str) -> None:
        self.n, self.width, self.bounds = n, width, bounds
        self._newest = newest
        self._rows = rows
        self._values: list[float | int] | None = None

    @property
    def values(self) -> list[float | int]:
        if self._values is None:
            self._values = from_json("[" + self._rows.replace("\n", ",") + "]", allow_inf_nan=False)
        return self._values

    def newest_values(self) -> list[float]:
        return self._newest


def series_text(rows: str, seps: tuple[str, ...]) -> tuple[str, FastRows] | None:
    """The series' lines and its checked rows, or None: take the Python path."""
    if not COMPILED:
        return None
    got = _fastrows.lines(rows, seps)
    if got is None:
        return None
    text, n, bounds, _, newest_values = got
    return text, FastRows(n, len(seps), bounds, newest_values, rows)
