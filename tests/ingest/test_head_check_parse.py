"""The head check's reader of dozor's own line protocol (hub/ingest/recovery.py), fuzzed against the writer of
it (hub/ingest/lineproto.py) and against arbitrary text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.ingest.lineproto import Point
from hub.ingest.recovery import LineError, parse_line

names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\\x7f"), min_size=1,
                max_size=12)
floats = st.floats(allow_nan=False, allow_infinity=False)


@given(names, st.dictionaries(texts, texts, max_size=4), st.dictionaries(texts, floats, min_size=1, max_size=4),
       st.integers(0, 2**53))
def test_every_line_the_hub_writes_reads_back(measurement, tags, fields, ts):
    line = Point(measurement, fields, ts, tags).line()
    p = parse_line(line)
    assert p.measurement == measurement
    assert dict(p.tags) == {k: v for k, v in tags.items() if v != ""}
    assert {key: value for _, key, value in p.fields} == {k: float(v) for k, v in fields.items()}
    assert p.ts_ms == ts
    assert line.startswith(p.head + " ")
    # a line rebuilt from some of its fields (what the check writes for a line stored in part) reads back too
    part = f"{p.head} {p.fields[0][0]} {p.ts_ms}"
    assert parse_line(part).fields == p.fields[:1]


@given(st.text(max_size=200))
def test_any_text_is_a_line_or_a_line_error(text):
    try:
        parsed = parse_line(text)
    except LineError as exc:
        assert str(exc)  # a reason, never another exception type
    else:
        assert parsed.fields and parsed.ts_ms >= 0


@pytest.mark.parametrize("bad", ["m f=1", "m f=x 1", "m,t f=1 1", "m f=1 -5", " f=1 1", "m =1 1", "m f=1 1 2"])
def test_malformed_lines_are_refused_with_a_line_error(bad):
    with pytest.raises(LineError):
        parse_line(bad)
