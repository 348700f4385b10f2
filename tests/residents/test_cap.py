"""CAP 1.2: every alert, update and cancel validates against the OASIS XSD; import is hardened."""

from __future__ import annotations

import re

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.models import Mode, ZoneStatus
from hub.residents import cap
from hub.residents.errors import CapError
from hub.residents.models import MsgType
from tests.residents.conftest import alert

XSD = xmlschema.XMLSchema(str(cap.XSD_PATH))  # an independent validator from the one cap.py uses
NS = {"cap": cap.NS}


def test_the_vendored_schema_is_the_oasis_cap_1_2_schema():
    text = cap.XSD_PATH.read_text()
    assert 'targetNamespace="urn:oasis:names:tc:emergency:cap:1.2"' in text
    assert "Copyright OASIS Open 2010" in text
    assert XSD.target_namespace == "urn:oasis:names:tc:emergency:cap:1.2"


def life(zones):
    a = alert(1, zones=("kyiv-podil", "kyiv-obolon"))
    u = alert(2, zones=("kyiv-podil", "kyiv-obolon"), status=ZoneStatus.ALL_CLEAR)
    c = alert(3, zones=("kyiv-podil", "kyiv-obolon"), status=ZoneStatus.CANCELLED)
    return a, u, c


def test_alert_update_cancel_are_valid_and_carry_the_right_references(zones):
    zmap = {z.id: z for z in zones}
    a, u, c = life(zones)
    docs = [cap.render(a, sender="dozor@kyiv", zones=zmap),
            cap.render(u, sender="dozor@kyiv", earlier=[a], zones=zmap),
            cap.render(c, sender="dozor@kyiv", earlier=[a, u], zones=zmap)]
    for d in docs:
        XSD.validate(d.decode())
    parsed = [XSD.to_dict(d.decode(), namespaces=NS) for d in docs]
    assert [p["cap:msgType"] for p in parsed] == ["Alert", "Update", "Cancel"]
    assert "cap:references" not in parsed[0]
    assert parsed[1]["cap:references"] == "dozor@kyiv,A-1.v1,2026-11-24T21:01:00-00:00"
    assert parsed[2]["cap:references"].split() == ["dozor@kyiv,A-1.v1,2026-11-24T21:01:00-00:00",
                                                   "dozor@kyiv,A-1.v2,2026-11-24T21:02:00-00:00"]
    for p in parsed:
        assert p["cap:status"] == "Actual" and p["cap:scope"] == "Public" and p["cap:incidents"] == "A-1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-00:00", p["cap:sent"])
        assert [i["cap:language"] for i in p["cap:info"]] == ["uk-UA", "en-US"]
    info_a, info_u = parsed[0]["cap:info"][1], parsed[1]["cap:info"][1]
    assert info_a["cap:responseType"] == ["Shelter"] and info_a["cap:urgency"] == "Immediate"
    assert info_a["cap:category"] == ["Security"] and info_a["cap:headline"] == "Air raid alert"
    assert info_u["cap:responseType"] == ["AllClear"] and info_u["cap:headline"] == "All clear"
    area = info_a["cap:area"][0]
    assert area["cap:areaDesc"] == "Podil" and area["cap:geocode"][0]["cap:value"] == "kyiv-podil"
    first = area["cap:polygon"][0].split()
    assert first[0] == first[-1] and first[0] == "50.455000,30.490000"  # CAP order is lat,lon; closed
    assert "cap:note" in parsed[2]


def test_an_exercise_is_rendered_as_status_exercise_and_marked():
    ex = alert(1, mode=Mode.EXERCISE)
    p = XSD.to_dict(cap.render(ex, sender="s").decode(), namespaces=NS)
    assert p["cap:status"] == "Exercise"
    assert "EXERCISE" in p["cap:note"]
    assert p["cap:info"][0]["cap:headline"].startswith("[НАВЧАННЯ]")


def test_update_without_anything_to_reference_is_refused():
    with pytest.raises(CapError) as e:
        cap.render(alert(2, status=ZoneStatus.ALL_CLEAR, msg_type=MsgType.UPDATE), sender="s")
    assert e.value.reason == "no_references"


def test_feed_lists_every_message_and_links_its_cap_document(zones):
    a, u, c = life(zones)
    from lxml import etree
    feed = etree.fromstring(cap.render_feed([c, u, a], base_url="https://alerts.example", sender="dozor"))
    atom = {"a": cap.ATOM}
    links = feed.xpath("//a:entry/a:link/@href", namespaces=atom)
    assert links == [f"https://alerts.example/cap/A-1.v{n}.xml" for n in (3, 2, 1)]
    assert feed.xpath("//a:entry/a:link/@type", namespaces=atom) == ["application/cap+xml"] * 3


EXTERNAL = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>UA-AF-2026-1124-001</identifier>
  <sender>air-force@example.gov.ua</sender>
  <sent>2026-11-24T23:10:00+02:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>uk-UA</language>
    <category>Security</category>
    <event>Air raid</event>
    <urgency>Immediate</urgency><severity>Extreme</severity><certainty>Likely</certainty>
    <headline>Загроза балістики</headline>
    <instruction>Пройдіть в укриття</instruction>
    <area><areaDesc>Kyiv north</areaDesc>
      <polygon>50.48,30.46 50.48,30.54 50.54,30.54 50.54,30.46 50.48,30.46</polygon></area>
  </info>
  <info>
    <language>en-US</language>
    <category>Security</category>
    <event>Air raid</event>
    <urgency>Immediate</urgency><severity>Extreme</severity><certainty>Likely</certainty>
    <headline>Ballistic threat</headline>
    <area><areaDesc>Podil</areaDesc><geocode><valueName>dozor-zone</valueName><value>kyiv-podil</value></geocode></area>
  </info>
</alert>""".encode()


def test_import_turns_external_cap_into_an_advisory_with_suggested_zones(zones):
    adv = cap.parse_import(EXTERNAL, zones)
    assert adv.identifier == "UA-AF-2026-1124-001" and adv.status == "Actual" and adv.msg_type == "Alert"
    assert adv.headline == {"uk": "Загроза балістики", "en": "Ballistic threat"}
    assert set(adv.suggested_zones) == {"kyiv-obolon", "kyiv-podil"}
    d = adv.draft()
    assert d["mode"] == "actual" and d["signal"] == "air-raid" and set(d["zones"]) == {"kyiv-obolon", "kyiv-podil"}
    assert d["source"] == "air-force@example.gov.ua,UA-AF-2026-1124-001,2026-11-24T23:10:00+02:00"


@pytest.mark.parametrize("doc,reason", [
    (b"", "bad_xml"),
    (b"<alert", "bad_xml"),
    (b"<x/>", "schema"),
    (EXTERNAL.replace(b"<status>Actual</status>", b"<status>Real</status>"), "schema"),
    (EXTERNAL.replace(b"+02:00</sent>", b"Z</sent>"), "schema"),
    (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
     b"&x;</alert>", "doctype_forbidden"),
    (b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/x.dtd"><a/>', "doctype_forbidden"),
    (b"<a>" + b"x" * (300 * 1024) + b"</a>", "too_large"),
])
def test_bad_imports_get_a_clear_reason(doc, reason):
    with pytest.raises(CapError) as e:
        cap.parse_import(doc)
    assert e.value.reason == reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=600),
    st.builds(lambda i, b: EXTERNAL[:i] + b + EXTERNAL[i:], st.integers(0, len(EXTERNAL)), st.binary(max_size=20)),
    st.builds(lambda i, j: EXTERNAL[:i] + EXTERNAL[j:], st.integers(0, len(EXTERNAL)), st.integers(0, len(EXTERNAL))),
))
def test_fuzzed_imports_either_parse_or_raise_caperror(doc):
    try:
        adv = cap.parse_import(doc)
    except CapError as e:
        assert e.reason in {"bad_xml", "schema", "doctype_forbidden", "too_large", "not_cap"}
    else:
        assert adv.identifier
