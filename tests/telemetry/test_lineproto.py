"""Line protocol and the ingest pipeline, without a store."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.models import DeviceKind, Reading, TelemetryBatch
from hub.ingest.lineproto import LineProtocolError, Point, batch_lines, format_float, reading_point
from hub.ingest.pipeline import Ingest


def test_escaping_rules():
    p = Point("my meas,x", {"f k=1": 1.5}, 1700000000123, {"t,a g": "v a=l,ue", "empty": ""})
    assert p.line() == r"my\ meas\,x,t\,a\ g=v\ a\=l\,ue f\ k\=1=1.5 1700000000123"


@pytest.mark.parametrize("bad", ["a\nb", "tab\there", "back\\slash", ""])
def test_control_characters_and_backslashes_are_refused(bad):
    with pytest.raises(LineProtocolError):
        Point("m", {"x": 1.0}, 1, {"t": "ok", "u": bad} if bad else {"": "v"}).line()


def test_fields_are_always_floats_never_text():
    assert format_float(3) == "3.0" and format_float(2.5) == "2.5"
    for bad in (True, "1", float("nan"), float("inf"), None):
        with pytest.raises(LineProtocolError):
            format_float(bad)
    with pytest.raises(LineProtocolError, match="no_fields"):
        Point("m", {}, 1).line()


def test_reading_naming_tags_and_flags():
    r = Reading(device="dust-1", kind=DeviceKind.SDS011, ts=1700000000.5, metrics={"pm2_5": 12.3, "pm10": 20.0},
                flags=("stuck", "high_humidity", "stuck"))
    line = reading_point("gw-1", r).line()
    assert line == ("sds011,device=dust-1,flags=high_humidity+stuck,gateway=gw-1 pm2_5=12.3,pm10=20.0 "
                    "1700000000500")
    batch = TelemetryBatch(gateway="gw-1", session=1, seq=1, readings=(r,))
    assert batch_lines(batch) == [line]
    with pytest.raises(LineProtocolError, match="bad_field_name"):
        reading_point("gw-1", Reading(device="d", kind="health", ts=0, metrics={"CPU Load": 1.0}))


def batch_payload(gw: str = "gw-1", seq: int = 1, **metrics: float) -> tuple[str, bytes]:
    r = Reading(device="dust-1", kind=DeviceKind.SDS011, ts=1700000000.0, metrics=metrics or {"pm2_5": 12.0})
    return f"dozor/v1/gw/{gw}/telemetry", TelemetryBatch(gateway=gw, session=3, seq=seq, readings=(r,)).to_bytes()


def test_pipeline_counts_every_bad_message_and_keeps_the_good():
    ing = Ingest()
    msgs = [batch_payload(seq=1), batch_payload(seq=1), ("dozor/v1/gw/gw-1/telemetry", b"{not json"),
            ("dozor/v1/gw/gw-2/telemetry", batch_payload(seq=2)[1]), ("elsewhere/x", b"{}"),
            ("dozor/v1/gw/gw-1/event", batch_payload(seq=3)[1]), batch_payload(seq=4, pm2_5=-5.0, pm10=30.0),
            batch_payload(seq=5, pm2_5=5000.0), ("dozor/v1/gw/gw-1/telemetry", batch_payload(seq=6)[1].replace(
                b"12.0", b"null"))]
    lines = ing.lines_for(msgs)
    reading_lines = [ln for ln in lines if ln.startswith("sds011")]
    assert len(reading_lines) == 2
    assert "flags=out_of_range" in reading_lines[1] and "pm2_5" not in reading_lines[1]
    assert ing.counters == {"batches": 3, "duplicate_batches": 1, "malformed.bad_json": 1, "malformed.invalid": 1,
                            "malformed.gateway_mismatch": 1, "malformed.foreign_topic": 1,
                            "malformed.not_telemetry": 1, "out_of_range_values": 2, "rejected_readings": 1,
                            "readings": 2}


def test_pipeline_aqi_points_use_tags_for_text():
    ing = Ingest()
    lines = ing.lines_for([batch_payload(pm2_5=12.0, pm10=160.0)])
    aqi = sorted(ln for ln in lines if ln.startswith("aqi"))
    assert aqi == [
        "aqi,category=fair,device=dust-1,gateway=gw-1,indicative=true,pollutant=pm2_5,table=eaqi_2024 "
        "index=2.0 1700000000000",
        "aqi,category=moderate,device=dust-1,gateway=gw-1,indicative=true,pollutant=pm2_5,table=epa_2024 "
        "index=56.0 1700000000000",
        "aqi,category=poor,device=dust-1,gateway=gw-1,indicative=true,pollutant=pm10,table=eaqi_2024 "
        "index=4.0 1700000000000",
        "aqi,category=unhealthy_sensitive,device=dust-1,gateway=gw-1,indicative=true,pollutant=pm10,"
        "table=epa_2024 index=103.0 1700000000000",
    ]


@settings(max_examples=200, deadline=None)
@given(topic=st.sampled_from(["dozor/v1/gw/gw-1/telemetry", "dozor/v1/gw/x/telemetry", "bad", ""]),
       payload=st.one_of(st.binary(max_size=200), st.just(batch_payload()[1]),
                         st.builds(lambda b, i: b[:i] + b"\x00" + b[i + 1:], st.just(batch_payload()[1]),
                                   st.integers(0, 150))))
def test_pipeline_fuzz_never_raises(topic, payload):
    ing = Ingest()
    ing.lines_for([(topic, payload)])
    assert sum(ing.counters.values()) >= 1
