"""Line protocol for a checked version 2 series, in bulk: ingest's Python path (``hub.ingest.fastrows`` is the
compiled one; it gives the same lines and leaves anything unusual to this one).

A compact series (``contract.codecs.telemetry``) arrives as text rows of JSON numbers, already checked by
``parse_rows`` (syntax, width, timestamps) with each column's (min, max). Here each column is held against
the metric's physical range (``contract.codecs.validate.RANGES``; metrics without one must be finite), and if
all are inside, the series becomes line protocol with one ``join`` of its items and their separators and one
``replace`` of its newlines: the hub's own head (measurement and tags: the gateway from the authenticated topic, device, flags,
zone) and field names, and the numbers exactly as the gateway wrote them. No object is built per reading.

A series with anything out of range returns ``None``: the caller converts it reading by reading, which removes
the bad values, flags the reading ``out_of_range`` and counts them, exactly as for version 1.
"""

from __future__ import annotations

import math

from contract.codecs.telemetry import Rows
from contract.codecs.validate import RANGES


def in_range(fields: tuple[str, ...], rows: Rows) -> bool:
    """Every value of every column finite and inside its metric's range."""
    for name, (lo, hi) in zip(fields, rows.bounds, strict=False):
        r = RANGES.get(name)
        if r is not None:
            if not (r.lo <= lo and hi <= r.hi):
                return False
        elif not (math.isfinite(lo) and math.isfinite(hi)):
            return False
    return True


def separators(head: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    """What goes before each item of a row: ``<head> f1=``, ``,f2=``, ..., ``,f<w-1>=``, and `` `` before the
    timestamp (both paths build their lines from these: ``line_formats`` here, ``hub.ingest.fastrows`` in C)."""
    return (head + " " + fields[0] + "=", *["," + f + "=" for f in fields[1:]], " ")


def line_formats(head: str, fields: tuple[str, ...], n: int) -> tuple[list[str], str]:
    """What ``series_lines`` builds an ``n``-row series' lines from: the separator before each cell (``separators``,
    the first one only once: a row's timestamp cell's text is ``"<ts>\n<next row's first value>"``), and what each
    ``\n`` becomes then: ``\n<head> f1=``."""
    first, *rest = separators(head, fields)
    return [first, *(rest * n)[:n * len(fields)]], "\n" + first


def series_lines(head: str, fields: tuple[str, ...], rows: Rows, cells: list[str],
                 formats: dict[tuple, tuple[list[str], str]]) -> str | None:
    """All rows of the series as ``\n``-joined lines, or None when a value is out of range. ``cells`` are the
    rows split at their commas (``contract.codecs.telemetry.parse_cells``): each after its separator, one
    ``join`` (the pieces interleaved by two slice assignments: ~40 % less than one ``%`` format over the cells)
    and one ``replace`` of the newlines, which start each next line. ``formats`` caches the per-series
    separators (bounded by the caller's dict; cleared when large)."""
    if not in_range(fields, rows):
        return None
    key = (head, fields, rows.n)
    fmt = formats.get(key)
    if fmt is None:
        if len(formats) >= 10_000:
            formats.clear()
        fmt = formats[key] = line_formats(head, fields, rows.n)
    seps, newline = fmt
    pieces: list[str] = [""] * (2 * len(cells))
    pieces[::2] = seps
    pieces[1::2] = cells
    return "".join(pieces).replace("\n", newline)
