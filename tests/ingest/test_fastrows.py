"""The compiled ingest path (hub/ingest/_fastrows.c) against the pure-Python one it stands in for.

The C pass may decline anything (the Python path then decides), but whatever it accepts must be exactly what
``parse_cells`` + ``series_lines`` make of it: the same lines, row count, column bounds and newest row. A
regular expression of the wire format (docs/protocol.md) judges acceptance independently of both.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.codecs import telemetry as wire
from contract.errors import MalformedMessage
from contract.models import CompactBatch, CompactSeries
from hub.ingest import Ingest, fastrows
from hub.ingest.compact import line_formats, separators
from hub.ingest.latest import LatestCache

JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
TS = re.compile(r"0|[1-9][0-9]{0,12}")
HEAD = "noise_node,device=n-1,gateway=gw-1,zone=obolon"


def _seps(head: str, width: int) -> tuple[str, ...]:
    return separators(head, tuple(f"f{k}" for k in range(width - 1)))


def _python(rows: str, width: int, head: str = HEAD):
    """The pure-Python path's answer: (text, rows) or None when it refuses the rows."""
    try:
        parsed, cells = wire.parse_cells(rows, width)
    except MalformedMessage:
        return None
    seps, newline = line_formats(head, tuple(f"f{k}" for k in range(width - 1)), parsed.n)
    pieces = [""] * (2 * len(cells))
    pieces[::2], pieces[1::2] = seps, cells
    return "".join(pieces).replace("\n", newline), parsed


def _agree(rows: str, width: int, head: str = HEAD):
    """Assert the C pass accepts only what Python accepts, with the same result; returns the C answer."""
    got = fastrows._fastrows.lines(rows, _seps(head, width))
    ref = _python(rows, width, head)
    if got is None:
        return None
    assert ref is not None, f"C accepted rows Python refuses: {rows!r}"
    text, n, bounds, newest, newest_values = got
    ref_text, parsed = ref
    assert text == ref_text
    assert n == parsed.n
    for (lo, hi), (rlo, rhi) in zip(bounds[:-1], parsed.bounds[:-1], strict=True):
        assert (lo, hi) == (float(rlo), float(rhi)) and math.isfinite(lo) and math.isfinite(hi)
    assert bounds[-1] == parsed.bounds[-1] and all(type(b) is int for b in bounds[-1])
    assert newest == parsed.timestamps.index(parsed.bounds[-1][1])
    assert newest_values == [float(v) for v in parsed.values[newest * width:newest * width + width - 1]]
    assert parsed.newest_values() == newest_values  # what the latest-state cache reads from either kind of rows
    for line in rows.split("\n"):  # the independent judge: the wire format, item by item
        items = line.split(",")
        assert len(items) == width and all(JSON_NUMBER.fullmatch(i) for i in items[:-1])
        assert TS.fullmatch(items[-1])
    return got


def test_the_compiled_path_is_built_and_used():
    """``./run test`` installs a compiler and Python's headers: the extension must be there, and on."""
    assert fastrows._fastrows is not None, "hub/ingest/_fastrows.c was not built (setup.py; gcc and python3-dev)"
    assert fastrows.COMPILED


NUMBERS = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(-1e4, 1e4, allow_nan=False).map(lambda v: f"{v:.3f}"),
    st.sampled_from(["0", "-0", "0.0", "-0.0", "1e5", "1E-5", "1e+5", "2.5e-3", "1e400", "-1e400", "1e-400",
                     "12345678901234567890", "9007199254740993", "0.1000000000000000055511151231257827",
                     "123456789012345678901234567890123456789012", "4.9e-324", "1.7976931348623157e308",
                     "01", ".5", "5.", "+1", "1e", "--1", "-", "", "1.5.2", "0x10", "1_0", " 1", "١"]),
)
STAMPS = st.one_of(st.integers(0, wire.TS_MAX_MS).map(str),
                   st.sampled_from(["0", "-0", "01", "1e3", "1.0", "-5", "10000000000000", "9999999999999", ""]))


@st.composite
def series_rows(draw, numbers=NUMBERS, stamps=STAMPS):
    width = draw(st.integers(2, 7))
    n = draw(st.integers(1, 12))
    rows = [",".join([*(draw(numbers) for _ in range(width - 1)), draw(stamps)]) for _ in range(n)]
    text = "\n".join(rows)
    if draw(st.booleans()) and draw(st.booleans()):  # now and then a damaged separator
        i = draw(st.integers(0, max(0, len(text) - 1)))
        text = text[:i] + draw(st.sampled_from([",", "\n", "", ",,", "\n\n", " "])) + text[i + 1:]
    return text, width


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series_rows())
def test_whatever_the_c_pass_accepts_the_python_path_makes_the_same(case):
    rows, width = case
    _agree(rows, width)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet="0123456789eE.+-,\n \tNaé", max_size=120), st.integers(2, 6))
def test_arbitrary_text_is_refused_or_agreed(rows, width):
    _agree(rows, width)


PLAIN = st.one_of(st.integers(-10**6, 10**6).map(str),
                  st.floats(-1e6, 1e6, allow_nan=False).map(repr),
                  st.floats(0, 200, allow_nan=False).map(lambda v: f"{v:.2f}"))


@settings(max_examples=500, deadline=None)
@given(series_rows(numbers=PLAIN, stamps=st.integers(0, wire.TS_MAX_MS).map(str)), st.booleans())
def test_plain_rows_take_the_compiled_path(case, cyrillic):
    """What gateways send (``repr`` of floats, integer milliseconds) is never sent down the slow path: else the
    C pass could decline everything and these tests would still pass."""
    rows, width = case
    head = HEAD.replace("obolon", "Оболонь") if cyrillic else HEAD  # non-ASCII tags: the UTF-8 branch
    if _python(rows, width, head) is None:  # a damaged separator
        return
    assert _agree(rows, width, head) is not None, rows


def test_known_edges():
    assert _agree("1,2,3\n4,5,6", 3)[:2] == (f"{HEAD} f0=1,f1=2 3\n{HEAD} f0=4,f1=5 6", 2)
    assert _agree("-0,5,7\n2.5e-3,1E+2,7", 3)[3] == 0  # equal newest stamps: the first row
    for refused in ("1,2,3\n", "1,2,3,\n4,5,6", "1,2", "1,2,3,4", "1,2,-0", "1,2,01", "1,2,1e3",
                    "1,2,10000000000000", "01,2,3", "1e400,2,3", ".5,2,3", "1,2,3\n\n4,5,6", ""):
        assert fastrows._fastrows.lines(refused, _seps(HEAD, 3)) is None, refused
    with pytest.raises(TypeError):
        fastrows._fastrows.lines("1,2,3", [HEAD, ",", " "])  # seps must be a tuple of str
    with pytest.raises(TypeError):
        fastrows._fastrows.lines("1,2,3", (HEAD, 1, " "))


def _batches():
    def series(device, fields, rows, flags=()):
        return CompactSeries(device=device, kind="sds011" if "pm2_5" in fields else "noise_node",
                             flags=flags, fields=fields, rows=rows)
    return [
        CompactBatch(gateway="gw-1", session=1, seq=1, series=(
            series("n-1", ("laeq", "lafmax"), "45.25,61.0,1767225600000\n46.5,60.75,1767225601000"),
            series("n-2", ("laeq",), "300.0,1767225600000\n50,1767225601000"),  # out of range: Python path
            series("a-1", ("pm2_5", "pm10"), "12.5,20,1767225600000"),  # AQI: Python path
            series("n-3", ("laeq", "lceq"), "1,2,3,4"),  # malformed: counted by the Python path
            series("n-4", ("laeq",), "40,1767225600002\n41,1767225600009\n42,1767225600009"),
        )),
        CompactBatch(gateway="gw-2", session=1, seq=1, series=(
            series("n-1", ("laeq", "custom_x"), "35.5e0,123456789012345678901234,1767225600000", ("hold",)),
        )),
    ]


def test_the_ingest_makes_the_same_lines_counters_and_latest_state_either_way(monkeypatch):
    results = []
    for compiled in (True, False):
        monkeypatch.setattr(fastrows, "COMPILED", compiled)
        cache = LatestCache()
        ingest = Ingest(zone_of=lambda gw: "Оболонь" if gw == "gw-2" else "obolon", on_rows=cache.on_rows)
        lines = [ingest.batch_lines(b) for b in _batches()]
        counters = {k: v for k, v in ingest.counters.items() if k != "python_path_series"}
        latest = [(d.gateway, d.device, {k: (r.ts, r.metrics) for k, r in d.metrics.items()})
                  for d in cache.latest()]
        tail = list(cache.tail)
        results.append((lines, counters, latest, tail, ingest.counters["python_path_series"]))
    (c_lines, c_counters, c_latest, c_tail, c_python), (p_lines, p_counters, p_latest, p_tail, _) = results
    assert c_lines == p_lines and c_counters == p_counters and c_latest == p_latest and c_tail == p_tail
    assert c_counters["rejected_series.bad_width"] == 1 and c_counters["out_of_range_values"] == 1
    assert c_python == 3  # out of range, PM and malformed went the Python way; the three plain ones did not


@pytest.mark.parametrize(("built", "pure"), [(True, False), (True, True), (False, False)])
def test_a_hub_on_the_python_path_says_so_once_and_why(monkeypatch, caplog, tmp_path, built, pure):
    from hub.ingest.service import IngestConfig, IngestService
    from hub.ingest.writer import TargetConfig

    monkeypatch.setattr(fastrows, "_fastrows", fastrows._fastrows if built else None)
    monkeypatch.setattr(fastrows, "COMPILED", built and not pure)
    caplog.set_level("INFO", logger="hub.ingest.service")
    svc = IngestService(IngestConfig(target=TargetConfig(kind="v1", url="http://127.0.0.1:9"),
                                     spool_path=tmp_path / "spool.db", aqi_tables=()))
    try:
        warned = [r for r in caplog.records if "parsed in Python" in r.getMessage()]
        assert svc.stats()["ingest.compiled"] == int(built and not pure)
        if built and not pure:
            assert warned == []
        else:
            assert len(warned) == 1 and warned[0].levelname == "WARNING"
            assert ("DOZOR_PURE_INGEST" if pure else "install gcc") in warned[0].getMessage()
    finally:
        svc.spool.close()
