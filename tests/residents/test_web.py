"""The residents HTTP API over real HTTP: SSE, shelters, locate, subscriptions, CAP, operator endpoints."""

from __future__ import annotations

import json

import httpx
import pytest

from contract.models import Mode, ZoneStatus
from hub.residents.loopback import serve_app
from tests.residents.conftest import alert, states
from tests.residents.receivers import Browser
from tests.residents.webapp import TOKEN, make_app, sse_events

OP = {"Authorization": f"Bearer {TOKEN}"}


async def test_sse_sends_current_state_first_then_each_newer_state(zones, shelters):
    app, notifier, _ = make_app(zones, shelters)
    a = alert(1)
    await notifier.on_zone_state(a, states(a))  # already active before the client connects
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as c:
        stream = sse_events(c, "/api/v1/zones/kyiv-podil/events")
        first = await anext(stream)
        assert first["event"] == "state" and first["id"] == "1"
        assert first["data"]["status"] == "active" and first["data"]["headline"]["uk"] == "Повітряна тривога"
        clear = alert(2, status=ZoneStatus.ALL_CLEAR)
        await notifier.on_zone_state(clear, states(clear))
        second = await anext(stream)
        assert second["id"] == "2" and second["data"]["status"] == "all_clear"
        assert second["data"]["headline"]["en"] == "All clear"
        await stream.aclose()


async def test_sse_public_stream_never_shows_an_exercise_but_the_tester_stream_does(zones, shelters):
    app, notifier, _ = make_app(zones, shelters)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as c:
        public = sse_events(c, "/api/v1/zones/kyiv-podil/events")
        tester = sse_events(c, "/api/v1/zones/kyiv-podil/events?tester=1")
        assert (await anext(public))["data"]["status"] == "idle"
        assert (await anext(tester))["data"]["status"] == "idle"
        ex = alert(1, mode=Mode.EXERCISE, aid="EX")
        await notifier.on_zone_state(ex, states(ex))
        real = alert(2, aid="A-2")
        await notifier.on_zone_state(real, states(real))
        t1 = await anext(tester)
        assert t1["data"]["mode"] in ("exercise", "actual")
        p1 = await anext(public)  # the public stream's next event is the real alert, never the exercise
        assert p1["data"]["alert"] == "A-2" and p1["data"]["mode"] == "actual"
        await public.aclose()
        await tester.aclose()


async def test_state_shelters_locate_and_config(zones, shelters):
    app, _, _ = make_app(zones, shelters)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as c:
        cfg = (await c.get("/api/v1/residents/config")).json()
        assert [z["id"] for z in cfg["zones"]] == ["kyiv-podil", "kyiv-obolon"] and cfg["push"] is True
        assert len(cfg["vapidPublicKey"]) == 87
        assert (await c.get("/api/v1/zones/kyiv-podil/state")).json()["status"] == "idle"
        assert (await c.get("/api/v1/zones/nowhere/state")).status_code == 404
        loc = (await c.get("/api/v1/residents/locate", params={"lat": 50.466, "lon": 30.515})).json()
        assert loc == {"zone": "kyiv-podil", "name": {"uk": "Поділ", "en": "Podil"}}
        assert (await c.get("/api/v1/residents/locate", params={"lat": 48.0, "lon": 30.0})).json()["zone"] is None
        near = (await c.get("/api/v1/zones/kyiv-podil/shelters", params={"lat": 50.4705, "lon": 30.508})).json()
        ids = [s["id"] for s in near["shelters"]]
        assert ids == ["podil-metro-poshtova", "podil-metro-kontraktova", "podil-school-124"]
        dists = [s["distance_m"] for s in near["shelters"]]
        assert dists == sorted(dists) and dists[0] < 100
        plain = (await c.get("/api/v1/zones/kyiv-obolon/shelters")).json()["shelters"]
        assert {s["id"] for s in plain} == {"obolon-metro-obolon", "obolon-tc-dream"}
        assert all("distance_m" not in s for s in plain)
        for bad in ({"lat": "abc", "lon": "1"}, {"lat": "91", "lon": "1"}, {"lat": "nan", "lon": "1"}, {"lat": "1"}):
            r = await c.get("/api/v1/residents/locate", params=bad)
            assert r.status_code == 400 and r.json()["error"] == "bad_coordinate"
        api = (await c.get("/api/v1/residents/channels", headers=OP)).json()["api"]
        assert api["locate:bad_coordinate"] == 4 and api["state:unknown_zone"] == 1


async def test_page_and_static_assets_are_served_without_any_external_url(zones, shelters):
    app, _, _ = make_app(zones, shelters)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as c:
        html = (await c.get("/")).text
        assert "/static/app.js" in html and 'lang="uk"' in html
        sw = await c.get("/sw.js")
        assert sw.headers["service-worker-allowed"] == "/" and "showNotification" in sw.text
        for name in ("app.js", "style.css", "icon.svg"):
            body = (await c.get(f"/static/{name}")).text.replace('xmlns="http://www.w3.org/2000/svg"', "")
            assert "http://" not in body and "https://" not in body
        assert "https://" not in html and "http://" not in html
        assert (await c.get("/static/../web.py")).status_code == 404
        assert (await c.get("/static/nope.js")).status_code == 404
        assert (await c.get("/manifest.webmanifest")).json()["display"] == "standalone"


async def test_push_subscription_api_validates_and_stores(zones, shelters):
    app, _, subs = make_app(zones, shelters)
    b = Browser(endpoint="https://push.example/sub/1")
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as c:
        ok = await c.post("/api/v1/push/subscriptions",
                          json={"subscription": b.subscription(), "zones": ["kyiv-podil"], "tester": True,
                                "lang": "en"})
        assert ok.status_code == 201
        s = subs.get(b.endpoint)
        assert s is not None and s.tester and s.zones == {"kyiv-podil"} and s.lang == "en"
        bads = [
            b"not json",
            json.dumps({"subscription": b.subscription(), "zones": []}).encode(),
            json.dumps({"subscription": b.subscription(), "zones": ["nowhere"]}).encode(),
            json.dumps({"subscription": {"endpoint": "https://x/y", "keys": {"p256dh": "AAAA" * 22, "auth": "x"}},
                        "zones": ["kyiv-podil"]}).encode(),
            json.dumps({"subscription": {"endpoint": "ftp://x/y", "keys": b.subscription()["keys"]},
                        "zones": ["kyiv-podil"]}).encode(),
            b"{" * 70_000,
        ]
        codes = [(await c.post("/api/v1/push/subscriptions", content=x)).status_code for x in bads]
        assert codes == [422, 422, 404, 422, 422, 413]
        gone = await c.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": b.endpoint})
        assert gone.json() == {"ok": True, "removed": True} and len(subs) == 0
        api = (await c.get("/api/v1/residents/channels", headers=OP)).json()["api"]
        assert api["subscribe:bad_json"] == 1 and api["subscribe:invalid"] == 3
        assert api["subscribe:unknown_zone"] == 1 and api["subscribe:too_large"] == 1


async def test_cap_endpoints_feed_documents_import_and_promote(zones, shelters):
    promoted = []

    async def on_promote(adv):
        promoted.append(adv)
        return {"id": "A-77"}

    app, notifier, _ = make_app(zones, shelters, on_promote=on_promote)
    a, u = alert(1), alert(2, status=ZoneStatus.ALL_CLEAR)
    await notifier.on_zone_state(a, states(a))
    await notifier.on_zone_state(u, states(u))
    from tests.residents.test_cap import EXTERNAL, XSD
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as c:
        feed = await c.get("/cap/feed.xml")
        assert feed.headers["content-type"].startswith("application/atom+xml")
        assert "/cap/A-1.v2.xml" in feed.text and "/cap/A-1.v1.xml" in feed.text
        doc = await c.get("/cap/A-1.v2.xml")
        assert doc.headers["content-type"].startswith("application/cap+xml")
        XSD.validate(doc.text)
        assert "<references>dozor@kyiv,A-1.v1," in doc.text
        assert (await c.get("/cap/A-1.xml")).text == doc.text  # bare id -> latest message
        assert (await c.get("/cap/nope.xml")).status_code == 404
        assert (await c.post("/api/v1/cap/import", content=EXTERNAL)).status_code == 401
        r = await c.post("/api/v1/cap/import", content=EXTERNAL, headers=OP)
        assert r.status_code == 201 and r.json()["identifier"] == "UA-AF-2026-1124-001"
        bad = await c.post("/api/v1/cap/import", content=b"<alert/>", headers=OP)
        assert bad.status_code == 422 and bad.json()["error"] == "schema"
        listed = (await c.get("/api/v1/cap/advisories", headers=OP)).json()
        assert [x["id"] for x in listed] == [r.json()["id"]]
        p = await c.post(f"/api/v1/cap/advisories/{r.json()['id']}/promote", headers=OP)
        assert p.json()["started"] is True and p.json()["alert"] == {"id": "A-77"}
        assert p.json()["draft"]["mode"] == "actual" and promoted[0].identifier == "UA-AF-2026-1124-001"
        assert (await c.post("/api/v1/cap/advisories/zzz/promote", headers=OP)).status_code == 404
        # An imported advisory never reaches residents by itself.
        assert (await c.get("/api/v1/zones/kyiv-obolon/state")).json()["status"] == "idle"


@pytest.mark.parametrize("hdr,code", [({}, 401), ({"Authorization": "Bearer nope"}, 401), (OP, 200)])
async def test_channels_endpoint_needs_the_operator_token(zones, shelters, hdr, code):
    app, _, _ = make_app(zones, shelters)
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as c:
        assert (await c.get("/api/v1/residents/channels", headers=hdr)).status_code == code


async def test_push_endpoints_outside_known_push_services_are_refused(zones, shelters):
    app, _, subs = make_app(zones, shelters, push_hosts=("fcm.googleapis.com",), allow_http_push=False)
    keys = Browser(endpoint="x").subscription()["keys"]
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as c:
        async def sub(endpoint: str) -> int:
            r = await c.post("/api/v1/push/subscriptions",
                             json={"subscription": {"endpoint": endpoint, "keys": keys}, "zones": ["kyiv-podil"]})
            return r.status_code
        assert await sub("http://127.0.0.1:8080/admin") == 422
        assert await sub("https://evil.example/fcm.googleapis.com") == 422
        assert await sub("https://fcm.googleapis.com.evil.example/x") == 422
        assert await sub("https://fcm.googleapis.com/fcm/send/abc:def") == 201
        api = (await c.get("/api/v1/residents/channels", headers=OP)).json()["api"]
    assert api["subscribe:endpoint_not_allowed"] == 3 and len(subs) == 1
