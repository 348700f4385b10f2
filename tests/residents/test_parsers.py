"""Config and request parsers: clear errors for bad input, fuzzed with hypothesis."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hub.residents.errors import ConfigError
from hub.residents.geo import distance_m, parse_zones, zone_at
from hub.residents.models import ResidentAlert, SubscribeRequest
from hub.residents.shelters import load_shelters, parse_shelters
from tests.residents.conftest import ROOT, ZONES, alert

JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                       lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                       max_leaves=20)


def test_every_example_shelters_file_loads(zones):
    for path in sorted((ROOT / "examples").glob("shelters*.geojson")):
        items = load_shelters(path, zones)
        assert items and all(s.zone in {"kyiv-podil", "kyiv-obolon"} for s in items)
        assert all(s.name["uk"] and s.name["en"] for s in items)


@pytest.mark.parametrize("doc,msg", [
    ({"type": "Feature"}, "FeatureCollection"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point",
      "coordinates": [50.46, 30.51]}, "properties": {"name": "x"}}]}, None),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point",
      "coordinates": [30.51, 95]}, "properties": {"name": "x"}}]}, "out of range"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point",
      "coordinates": [30.51, 50.46]}, "properties": {}}]}, "features[0].name"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point",
      "coordinates": [30.51, 50.46]}, "properties": {"name": "x", "zone": "mars"}}]}, "not a known zone"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point",
      "coordinates": [30.51, 50.46]}, "properties": {"name": "x", "capacity": -1}}]}, "capacity"),
])
def test_shelter_errors_name_the_feature_and_field(zones, doc, msg):
    if msg is None:  # [lat, lon] swapped: valid numbers, lands in no zone -> kept, but zone is None
        assert parse_shelters(doc, zones)[0].zone is None
        return
    with pytest.raises(ConfigError, match=re.escape(msg)):
        parse_shelters(doc, zones)


def test_zone_errors_and_point_in_polygon():
    zs = parse_zones(ZONES)
    assert zone_at(zs, 50.466, 30.515).id == "kyiv-podil"
    assert zone_at(zs, 50.51, 30.50).id == "kyiv-obolon"
    assert zone_at(zs, 49.0, 30.5) is None
    assert 1100 < distance_m(50.45, 30.52, 50.46, 30.52) < 1120
    with pytest.raises(ConfigError, match="closed"):
        parse_zones([{"id": "z", "polygon": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}}])
    with pytest.raises(ConfigError, match="duplicate"):
        parse_zones([{"id": "z"}, {"id": "z"}])
    with pytest.raises(ConfigError, match="id must be"):
        parse_zones([{"id": "a/b"}])


def test_zone_with_a_hole():
    ring = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]
    hole = [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]
    (z,) = parse_zones([{"id": "donut", "polygon": {"type": "Polygon", "coordinates": [ring, hole]}}])
    assert z.contains(2, 2) and not z.contains(5, 5)


@settings(max_examples=200, deadline=None)
@given(JSONISH)
def test_fuzzed_shelter_documents_load_or_raise_configerror(doc):
    wrapped = [doc, {"type": "FeatureCollection", "features": doc},
               {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": doc, "properties": doc}]}]
    for d in wrapped:
        try:
            out = parse_shelters(d, parse_zones(ZONES))
        except ConfigError as exc:
            assert str(exc).startswith("shelters: ")
        else:
            assert isinstance(out, list)


@settings(max_examples=200, deadline=None)
@given(JSONISH)
def test_fuzzed_zone_configs_load_or_raise_configerror(doc):
    for d in ([doc], [{"id": "z", "name": doc, "polygon": doc}]):
        try:
            out = parse_zones(d)
        except ConfigError as exc:
            assert str(exc).startswith("zones[0]")
        else:
            assert [z.id for z in out] == ["z"]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=300), JSONISH.map(lambda x: json.dumps(x).encode())))
def test_fuzzed_subscription_bodies_validate_or_raise_validationerror(raw):
    try:
        req = SubscribeRequest.model_validate_json(raw)
    except ValidationError as exc:
        assert exc.errors()
    else:
        assert req.zones


def test_resident_alert_invariants():
    with pytest.raises(ValidationError, match="status=cancelled"):
        ResidentAlert.model_validate({**alert(1).model_dump(), "msg_type": "Cancel"})
    with pytest.raises(ValidationError, match="time zone"):
        ResidentAlert.model_validate({**alert(1).model_dump(), "sent": "2026-01-01T00:00:00"})
    a = alert(1)
    assert ResidentAlert.model_validate_json(a.model_dump_json(by_alias=True)) == a
    assert a.cap_identifier == "A-1.v1"
    assert len(json.dumps(a.public_payload("kyiv-podil")).encode()) < 1000


async def test_build_residents_wires_every_configured_channel(tmp_path):
    from hub.residents.config import ResidentsConfig, build_residents
    cfg = ResidentsConfig.model_validate({
        "public_url": "https://alerts.example/", "sender": "dozor@kyiv",
        "shelters_file": str(ROOT / "examples" / "shelters.geojson"),
        "webpush": {"subject": "mailto:ops@dozor.example", "vapid_key_file": str(tmp_path / "vapid.pem"),
                    "subscriptions_db": str(tmp_path / "subs.sqlite")},
        "ntfy": {"base_url": "http://127.0.0.1:9"},
        "telegram": {"bot_token": "1:abc", "chats": {"kyiv-podil": "@p"}},
        "webhooks": [{"url": "http://127.0.0.1:9/h", "secret": "0123456789abcdef"}],
    })
    r = build_residents(cfg, ZONES, token="t")
    assert [c.name for c in r.notifier.channels] == ["webpush", "ntfy", "telegram", "webhook"]
    assert (tmp_path / "vapid.pem").stat().st_mode & 0o777 == 0o600 and len(r.shelters) == 5
    again = build_residents(cfg, ZONES, token="t")  # the key persists across restarts
    assert again.webpush.signer.public_key_b64 == r.webpush.signer.public_key_b64
    await r.aclose()
    await again.aclose()
    with pytest.raises(ValidationError):
        ResidentsConfig.model_validate({"public_url": "x", "webhooks": [{"url": "u", "secret": "short"}]})
