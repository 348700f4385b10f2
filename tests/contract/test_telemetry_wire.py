"""Telemetry wire version 2 (contract/codecs/telemetry.py): golden vectors, round trips, refusals, and fuzz of
the bulk row check (it never raises anything but MalformedMessage, and what it accepts is exactly what it says)."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.codecs import telemetry as wire
from contract.errors import MalformedMessage
from contract.models import CompactBatch, Reading, TelemetryBatch

VECTORS = json.loads(resources.files("contract").joinpath("vectors/telemetry.json").read_text())
JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


@pytest.mark.parametrize("case", VECTORS["good"])
def test_golden_payload_both_ways(case):
    readings = [Reading.model_validate(r) for r in case["readings"]]
    payload = wire.encode(case["gateway"], case["session"], case["seq"], readings, historical=case["historical"])
    assert payload == case["payload"].encode()
    batch = wire.decode_batch(payload)
    assert (batch.gateway, batch.session, batch.seq, batch.historical) == \
        (case["gateway"], case["session"], case["seq"], case["historical"])
    # grouped by series on the wire: the same readings, each series in its own order
    assert sorted(batch.readings, key=lambda r: (r.device, r.ts)) == sorted(readings, key=lambda r: (r.device, r.ts))
    assert isinstance(wire.decode(payload), CompactBatch)


@pytest.mark.parametrize("case", VECTORS["bad_rows"], ids=lambda c: f"{c['reason']}:{c['rows'][:20]!r}")
def test_bad_rows_are_refused_with_their_reason(case):
    with pytest.raises(MalformedMessage) as info:
        wire.parse_rows(case["rows"], case["width"])
    assert info.value.reason == case["reason"]


def test_version_1_still_decodes_and_version_2_in_any_key_order():
    r = Reading(device="pm-1", kind="sds011", ts=1.5, metrics={"pm2_5": 3.0})
    v1 = TelemetryBatch(gateway="gw-1", session=1, seq=2, readings=(r,)).to_bytes()
    assert wire.decode(v1) == TelemetryBatch.model_validate_json(v1) == wire.decode_batch(v1)
    v2 = json.loads(wire.encode("gw-1", 1, 2, [r]))
    shuffled = json.dumps(dict(reversed(list(v2.items())))).encode()  # "v" last, spaces after the colons
    assert not shuffled.startswith(b'{"v":2,') and wire.decode_batch(shuffled).readings == (r,)
    with pytest.raises(MalformedMessage) as info:
        wire.decode(b'{"v":3,"gateway":"gw-1"}')
    assert info.value.reason == "invalid"


@pytest.mark.parametrize("reading", [
    Reading(device="d", kind="sds011", ts=1.0, metrics={"PM2.5": 1.0}),  # not a line-protocol field name
    Reading(device="d", kind="sds011", ts=1.0, metrics={"pm2_5": float("nan")}),
    Reading(device="d", kind="sds011", ts=1.0, metrics={}),
    Reading(device="d", kind="sds011", ts=-1.0, metrics={"pm2_5": 1.0}),
    Reading(device="d", kind="sds011", ts=1.0, metrics={"pm2_5": 1.0}, flags=("Bad Flag",)),
])
def test_what_version_2_cannot_carry_is_refused_by_the_encoder(reading):
    with pytest.raises(wire.NotCompactable):
        wire.encode("gw-1", 1, 1, [reading])


names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def readings(draw):
    out = []
    for _ in range(draw(st.integers(1, 6))):
        fields = draw(st.lists(names, min_size=1, max_size=4, unique=True))
        out.append(Reading(device=draw(st.sampled_from(["a", "b-1", "C.2"])),
                           kind=draw(st.sampled_from(["sds011", "noise_node", "health"])),
                           ts=draw(st.integers(0, wire.TS_MAX_MS)) / 1000,
                           metrics={f: draw(finite) for f in fields},
                           flags=tuple(draw(st.lists(names, max_size=2)))))
    return out


@settings(max_examples=200, deadline=None)
@given(readings(), st.booleans())
def test_round_trip_keeps_every_reading_exactly(rs, historical):
    batch = wire.decode_batch(wire.encode("gw-9", 3, 4, rs, historical=historical))
    key = lambda r: (r.device, str(r.kind), r.flags, tuple(r.metrics), r.ts)  # noqa: E731
    assert sorted(batch.readings, key=key) == sorted(rs, key=key)
    assert len(batch.readings) == len(rs) and batch.historical is historical


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789eE.+-,\n \tNa", max_size=80), st.integers(1, 5))
def test_parse_rows_fuzz_accepts_only_well_formed_rows(rows, width):
    try:
        parsed = wire.parse_rows(rows, width)
    except MalformedMessage as exc:
        assert exc.reason in {"bad_rows", "bad_width", "bad_number", "bad_timestamp"}
        return
    lines = rows.split("\n")
    assert parsed.n == len(lines) and len(parsed.values) == parsed.n * width
    for line in lines:  # every item a JSON number, the last a 0..13-digit integer: nothing else can pass
        items = line.split(",")
        assert len(items) == width and all(JSON_NUMBER.fullmatch(i) for i in items)
        assert re.fullmatch(r"-?[0-9]+", items[-1]) and 0 <= int(items[-1]) <= wire.TS_MAX_MS
    assert parsed.text.split(",") == [i for line in lines for i in line.split(",")]
    assert wire.parse_cells(rows, width) == (parsed, rows.split(","))  # the cells a receiver formats from


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 400))
def test_decode_of_mangled_payloads_raises_only_malformed(junk, cut):
    good = VECTORS["good"][0]["payload"].encode()
    for payload in (junk, good[:cut] + junk, good[:cut] + good[cut + 1:]):
        try:
            batch = wire.decode_batch(payload)
        except MalformedMessage:
            continue
        assert isinstance(batch, TelemetryBatch)
