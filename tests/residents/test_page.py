"""The resident page as the server renders it (no browser): state from the first byte, threat guidance and
the shelters that fit, the exercise notice, history from the hub's real SQLite store, budgets, config."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.models import Mode, Signal, ZoneState, ZoneStatus
from hub.config import load_config
from hub.residents.errors import ConfigError
from hub.residents.guidance import GuidanceBook, GuidanceConfig
from hub.residents.history import History, from_doc
from hub.residents.shelters import parse_shelters
from hub.residents.state import ZoneStateStore
from hub.store import Store
from hub.zones import Zones
from tests.residents.conftest import ZONES, alert, rect, states
from tests.residents.webapp import make_app

STATIC = Path(__file__).resolve().parents[2] / "hub" / "residents" / "static"
TYPES = ["bomb_shelter", "metro", "basement", "parking", "building"]


def typed_shelters(zones):
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [30.50 + 0.005 * i, 50.46]},
              "properties": {"id": f"s-{t}", "zone": "kyiv-podil", "type": t, "name": {"uk": f"Укр {t}", "en": t}}}
             for i, t in enumerate(TYPES)]
    feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [30.51, 50.47]},
                  "properties": {"id": "s-untyped", "zone": "kyiv-podil", "name": "Old shelter"}})
    return parse_shelters({"type": "FeatureCollection", "features": feats}, zones)


async def get_page(app, **params) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
        r = await c.get("/", params={"zone": "kyiv-podil", **params})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        return r.text


def state_box(html: str) -> str:
    return re.search(r'<section id="state".*?</section>', html, re.S).group(0)


def shelter_ids(html: str) -> list[str]:
    return re.findall(r'<li data-id="([^"]+)"', html)


async def test_idle_page_says_no_alert_and_lists_the_zones_shelters(zones):
    app, _, _ = make_app(zones, typed_shelters(zones))
    html = await get_page(app, lang="en")
    assert 'data-status="idle"' in html and ">No alert</h2>" in html
    assert 'role="alert"' in html and 'aria-live="assertive"' in html
    assert len(shelter_ids(html)) == 6 and 'id="map"' in html and "<title>Podil</title>" in html


@pytest.mark.parametrize("lang,status,headline", [
    ("uk", "Повітряна тривога — негайно йдіть в укриття", "Повітряна тривога"),
    ("en", "Air raid — go to a shelter now", "Air raid"),
])
async def test_an_air_raid_is_in_the_first_byte_with_start_time_and_every_shelter(zones, lang, status, headline):
    app, notifier, _ = make_app(zones, typed_shelters(zones))
    a = alert(1)
    await notifier.on_zone_state(a, states(a))
    html = await get_page(app, lang=lang)
    box = state_box(html)
    assert 'data-status="active"' in box and f">{status}</h2>" in box
    assert "Немає тривоги" not in html and "No alert" not in html  # never "no alert" during an alert
    assert 'id="started"' in box and 'id="duration"' in box and 'id="ended"' not in box
    assert shelter_ids(html) == [f"s-{t}" for t in TYPES] + ["s-untyped"]
    assert html.count("<h2 id=\"status\"") == 1


async def test_chemical_hazard_lists_no_underground_shelter_and_says_stay_indoors(zones):
    app, notifier, _ = make_app(zones, typed_shelters(zones))
    a = alert(1, signal=Signal.CHEMICAL)
    await notifier.on_zone_state(a, states(a))
    html = await get_page(app, lang="en")
    assert shelter_ids(html) == ["s-building"]  # no metro, basement, car park, bomb shelter, unknown type
    assert "Shut windows, doors and ventilation, and seal the gaps." in html and "upper floors" in html
    assert "Underground shelters are not listed" in html
    assert re.findall(r'<g class="sh" data-id="([^"]+)"', html) == ["s-building"]  # the map agrees


async def test_chemical_agent_lighter_than_air_and_city_overrides_come_from_config(zones):
    cfg = GuidanceConfig.model_validate({"chemical_agent": "lighter", "signals": {"radiation": {
        "steps": {"en": ["Go to the Podil civil defence basement."]}, "shelter_types": ["basement"]}}})
    app, notifier, _ = make_app(zones, typed_shelters(zones), guidance=GuidanceBook(cfg))
    a = alert(1, signal=Signal.CHEMICAL)
    await notifier.on_zone_state(a, states(a))
    html = await get_page(app, lang="en")
    assert "lower floors" in html and "s-metro" in shelter_ids(html)
    r = alert(2, signal=Signal.RADIATION)
    await notifier.on_zone_state(r, states(r))
    html = await get_page(app, lang="en")
    assert "Go to the Podil civil defence basement." in html and shelter_ids(html) == ["s-basement", "s-untyped"]
    assert "Радіаційна небезпека" in await get_page(app, lang="uk")  # the other language keeps its default


async def test_radiation_lists_basements_and_shelters_only(zones):
    app, notifier, _ = make_app(zones, typed_shelters(zones))
    a = alert(1, signal=Signal.RADIATION)
    await notifier.on_zone_state(a, states(a))
    html = await get_page(app, lang="en")
    # an untyped shelter (older shelters files) may be underground: listed where underground ones apply
    assert shelter_ids(html) == ["s-bomb_shelter", "s-basement", "s-untyped"]
    assert "basement or the centre of a solid building" in html


async def test_all_clear_has_one_heading_what_to_do_and_start_end_duration(zones):
    app, notifier, _ = make_app(zones, typed_shelters(zones))
    a = alert(1)
    await notifier.on_zone_state(a, states(a))
    notifier.store.times["A-1"] = (1000.0, 1000.0 + 38 * 60)
    clear = alert(2, status=ZoneStatus.ALL_CLEAR)
    await notifier.on_zone_state(clear, states(clear))
    html = await get_page(app, lang="en")
    box = state_box(html)
    assert len(re.findall(r"all clear", box, re.I)) == 1  # the engine's "All clear" headline is not repeated
    assert 'id="ended"' in box and ">38 min</dd>" in box
    assert "Leave the shelter calmly." in html and 'id="shelter-list"' not in html


async def test_sounding_exercise_shows_the_notice_to_everyone_and_the_content_to_testers(zones):
    app, notifier, _ = make_app(zones, typed_shelters(zones))
    ex = alert(1, mode=Mode.EXERCISE, aid="EX-1")
    await notifier.on_zone_state(ex, states(ex))
    public = await get_page(app, lang="en")
    assert 'data-status="exercise"' in public and "Exercise — sirens are being tested, no danger" in public
    assert "No alert" not in public and "[EXERCISE]" not in public and "EX-1" not in public
    tester = await get_page(app, lang="en", tester="1")
    assert 'data-mode="exercise"' in tester and "EXERCISE — NOT A REAL ALERT" in tester
    assert "[EXERCISE]" in tester and "Exercise — sirens are being tested, no danger" in tester
    silent = alert(2, mode=Mode.EXERCISE, aid="EX-2", signal=Signal.SILENT_TEST)
    await notifier.on_zone_state(silent, states(silent))
    assert ">No alert</h2>" in await get_page(app, lang="en")  # a silent test sounds nothing


async def test_an_actual_alert_outranks_a_later_exercise_until_it_ends(zones):
    store = ZoneStateStore(clock=lambda: 1000.0)
    real = ZoneState(zone="kyiv-podil", version=1, status=ZoneStatus.ACTIVE, alert="A-1", signal=Signal.AIR_RAID,
                     mode=Mode.ACTUAL, ts=1.0, expires=5000.0)
    store.apply(real)
    ex = ZoneState(zone="kyiv-podil", version=2, status=ZoneStatus.ACTIVE, alert="EX-1", signal=Signal.AIR_RAID,
                   mode=Mode.EXERCISE, ts=2.0, expires=5000.0)
    store.apply(ex)
    assert store.view("kyiv-podil")["status"] == "active" and store.view("kyiv-podil")["alert"] == "A-1"
    store.retire("A-1", ["kyiv-podil"])  # the engine ended A-1 but the zone state names the exercise
    assert store.view("kyiv-podil")["status"] == "exercise"
    assert store.counters["retired"] == 1


def test_history_comes_from_the_hubs_sqlite_store_with_start_end_and_duration(tmp_path):
    now = time.time()
    docs = [
        {"id": "A-old", "signal": "air-raid", "mode": "actual", "zones": ["kyiv-podil"], "status": "expired",
         "created_at": now - 3 * 86400, "expires_at": now - 3 * 86400 + 600, "history": []},
        {"id": "A-day", "signal": "chemical", "mode": "actual", "zones": ["kyiv-podil"], "status": "all_clear",
         "created_at": now - 3600, "history": [{"phase": "activate", "started_at": now - 3600}],
         "phase": "all_clear", "phase_started_at": now - 3600 + 45 * 60},
        {"id": "A-ex", "signal": "air-raid", "mode": "exercise", "zones": ["kyiv-podil"], "status": "stopped",
         "created_at": now - 600, "history": [], "phase": "stop", "phase_started_at": now - 300},
        {"id": "A-pending", "signal": "air-raid", "mode": "actual", "zones": ["kyiv-podil"],
         "status": "pending_confirmation", "created_at": now - 60, "history": []},
        {"id": "A-unconfirmed", "signal": "air-raid", "mode": "actual", "zones": ["kyiv-podil"], "status": "expired",
         "phase_seq": 0, "created_at": now - 120, "expires_at": now - 60, "history": []},
        {"id": "A-month", "signal": "air-raid", "mode": "actual", "zones": ["kyiv-podil"], "status": "stopped",
         "created_at": now - 30 * 86400, "history": [], "phase": "stop", "phase_started_at": now - 30 * 86400},
        {"id": "A-other", "signal": "air-raid", "mode": "actual", "zones": ["kyiv-obolon"], "status": "active",
         "created_at": now - 60, "history": [], "phase": "activate", "phase_started_at": now - 60},
    ]
    store = Store(tmp_path / "hub.sqlite")

    class Row:
        def __init__(self, doc):
            self.doc = doc

        def row(self):
            return self.doc["status"], self.doc["created_at"], self.doc

    for d in docs:
        store.put_alert(d["id"], Row(d))
    store.flush()
    store.close()
    reopened = Store(tmp_path / "hub.sqlite")  # a restarted hub: history is what SQLite holds
    hist = History(reopened.load_alerts)
    week = hist.of_zone("kyiv-podil")
    assert [p.id for p in week] == ["A-day", "A-old"]  # no pending alert, no exercise, nothing older than 7 d
    assert week[0].duration_s(now) == pytest.approx(45 * 60) and week[1].duration_s(now) == pytest.approx(600)
    assert [p.id for p in hist.of_zone("kyiv-podil", within_s=86400)] == ["A-day"]
    assert [p.id for p in hist.of_zone("kyiv-podil", tester=True)] == ["A-ex", "A-day", "A-old"]
    assert from_doc({"id": "broken"}) is None
    reopened.close()


async def test_history_table_on_the_page_and_a_broken_store_never_breaks_it(zones):
    now = time.time()
    doc = {"id": "A-9", "signal": "air-raid", "mode": "actual", "zones": ["kyiv-podil"], "status": "all_clear",
           "created_at": now - 7200, "history": [], "phase": "all_clear", "phase_started_at": now - 7200 + 3900}
    app, _, _ = make_app(zones, typed_shelters(zones), history=History(lambda: [doc]))
    html = await get_page(app, lang="en")
    row = re.search(r'<tr data-alert="A-9">(.*?)</tr>', html).group(1)
    assert "Air raid" in row and "1 h 5 min" in row and row.count("<time") == 2

    def broken():
        raise OSError("disk gone")
    hist = History(broken)
    app, _, _ = make_app(zones, typed_shelters(zones), history=hist)
    assert "Nothing recorded in the past 24 hours." in await get_page(app, lang="en") and hist.errors >= 1


async def test_language_zone_and_tester_come_from_cookies_when_the_url_has_none(zones):
    app, _, _ = make_app(zones, typed_shelters(zones))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
        c.cookies.set("dozor_zone", "kyiv-obolon")
        c.cookies.set("dozor_lang", "en")
        html = (await c.get("/")).text
        assert 'data-zone="kyiv-obolon"' in html and '<html lang="en">' in html and ">Obolon</span>" in html
        uk = (await c.get("/", params={"zone": "kyiv-podil", "lang": "uk"})).text
        assert ">Поділ</span>" in uk and "Podil</span>" not in uk  # localised zone names
        bad = await c.get("/", params={"zone": "atlantis"})
        assert bad.status_code == 200 and 'data-zone="kyiv-podil"' in bad.text
        assert (await c.get("/favicon.ico")).status_code == 200


async def test_page_budget_one_round_trip_and_no_external_requests(zones, shelters):
    app, notifier, _ = make_app(zones, typed_shelters(zones))
    a = alert(1)
    await notifier.on_zone_state(a, states(a))
    html = await get_page(app)
    js = (STATIC / "app.js").read_bytes()
    total = len(html.encode()) + len(js) + len((STATIC / "icon.svg").read_bytes())
    assert total < 50_000, f"page + app.js + icon = {total} bytes"
    head = html.split("</head>")[0]
    assert "<style>" in head and 'rel="stylesheet"' not in head and "<script" not in head  # nothing blocks paint
    assert re.findall(r"<script[^>]*src=[^>]*>", html) == ['<script src="/static/app.js" defer>']
    assert "http://" not in html and "https://" not in html and "@import" not in html


def test_zones_file_takes_localised_names_and_stays_backward_compatible(tmp_path):
    old = {"id": "podil", "name": "Podilskyi district", "gateways": ["gw-1"]}
    new = {**old, "id": "obolon", "names": {"uk": "Оболонь", "en": "Obolon"}, "polygon": rect(30.4, 50.4, 30.5, 50.5)}
    (tmp_path / "zones.json").write_text(json.dumps([old, new], ensure_ascii=False))
    zones = Zones.load(tmp_path / "zones.json")
    assert zones.get("podil").names == {} and zones.get("obolon").names["uk"] == "Оболонь"
    (tmp_path / "bad.json").write_text(json.dumps([{**old, "names": {"de": "Podil"}}]))
    with pytest.raises(Exception, match="names"):
        Zones.load(tmp_path / "bad.json")


def test_hub_toml_configures_guidance_timezone_and_heartbeat(tmp_path):
    (tmp_path / "zones.json").write_text(json.dumps(ZONES))
    (tmp_path / "hub.toml").write_text(
        '[hub]\nstate_dir = "s"\nzones = "zones.json"\n[mqtt]\nurl = "mqtt://127.0.0.1:1"\n'
        '[residents]\npublic_url = "https://a.example"\ntimezone = "Europe/Kyiv"\nheartbeat_s = 5\n'
        '[residents.guidance]\nchemical_agent = "lighter"\n'
        '[residents.guidance.signals.air-raid]\nsteps = { uk = ["Йдіть у метро."], en = ["Go to the metro."] }\n')
    cfg = load_config(tmp_path / "hub.toml")
    r = cfg.residents
    assert r.heartbeat_s == 5 and r.guidance.chemical_agent == "lighter"
    book = GuidanceBook(r.guidance)
    assert book.for_view("active", "air-raid").steps["en"] == ("Go to the metro.",)
    (tmp_path / "hub.toml").write_text((tmp_path / "hub.toml").read_text().replace("lighter", "sideways"))
    with pytest.raises(Exception, match="chemical_agent"):
        load_config(tmp_path / "hub.toml")


@settings(max_examples=200, deadline=None)
@given(props=st.dictionaries(st.sampled_from(["type", "suitable", "name", "zone", "capacity"]),
                             st.one_of(st.none(), st.text(max_size=8), st.integers(), st.booleans(),
                                       st.lists(st.text(max_size=10), max_size=3))))
def test_shelter_parser_rejects_bad_properties_with_a_clear_error_never_a_crash(props):
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [30.5, 50.46]}, "properties": props}]}
    try:
        out = parse_shelters(doc)
    except ConfigError as exc:
        assert "features[0]" in str(exc)
    else:
        assert out[0].type in (None, *TYPES)


async def test_live_stream_sends_the_full_rendered_state_on_connect_then_heartbeats(zones):
    from hub.residents.loopback import serve_app
    from tests.residents.webapp import sse_events

    app, notifier, _ = make_app(zones, typed_shelters(zones), keepalive_s=0.2)
    a = alert(1, signal=Signal.RADIATION)
    await notifier.on_zone_state(a, states(a))
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as c:
        events = []
        async for ev in sse_events(c, "/api/v1/zones/kyiv-podil/events"):
            events.append(ev)
            if len(events) == 3:
                break
    first = events[0]
    assert first["event"] == "state" and first["data"]["status"] == "active"
    assert "Radiation hazard — go indoors now" in first["data"]["html"]["en"]
    assert "Радіаційна небезпека" in first["data"]["html"]["uk"]
    assert [e["event"] for e in events[1:]] == ["heartbeat", "heartbeat"]
    assert all(isinstance(e["data"]["ts"], float) for e in events[1:])


async def test_operator_and_config_text_is_escaped_in_the_page_and_the_stream(zones):
    app, notifier, _ = make_app(zones, typed_shelters(zones))
    st = ZoneState(zone="kyiv-podil", version=1, status=ZoneStatus.ACTIVE, alert="A-x", signal=Signal.AIR_RAID,
                   mode=Mode.ACTUAL, ts=1.0, headline={"uk": "<script>alert(1)</script>", "en": "<img src=x>"})
    notifier.store.apply(st)
    html = await get_page(app, lang="en")
    assert "<img src=x>" not in html and "&lt;img src=x&gt;" in html
    assert "<script>alert(1)</script>" not in notifier.store.view("kyiv-podil")["html"]["uk"]


async def test_an_alert_waiting_for_confirmation_never_reaches_the_page(zones):
    app, notifier, _ = make_app(zones, typed_shelters(zones))
    pending = {"id": "A-p", "signal": "air-raid", "mode": "actual", "zones": ["kyiv-podil"],
               "status": "pending_confirmation", "version": 1, "created_at": 1.0, "expires_at": 9e9}
    wrong = ZoneState(zone="kyiv-podil", version=1, status=ZoneStatus.ACTIVE, alert="A-p", signal=Signal.AIR_RAID,
                      mode=Mode.ACTUAL, ts=1.0)
    await notifier.on_alert(pending, [wrong])
    assert notifier.counters["unsent_ignored"] == 1
    assert ">Немає тривоги</h2>" in await get_page(app, lang="uk")
    confirmed = {**pending, "status": "active", "version": 2}
    await notifier.on_alert(confirmed, [wrong.model_copy(update={"version": 2})])
    assert 'data-status="active"' in await get_page(app, lang="uk")
