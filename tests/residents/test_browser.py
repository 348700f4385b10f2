"""The resident page in a real browser: Debian Chromium driven by Playwright (never `playwright install`).
One browser per module; the residents router on a real loopback HTTP server. The full scenario from a real
hub process, broker and city (every state, both sizes, screenshots) is tests/e2e/test_resident_page.py."""

from __future__ import annotations

import json
import shutil

import pytest
import pytest_asyncio

from contract.models import Signal
from hub.residents.loopback import serve_app
from tests.residents.conftest import alert, states
from tests.residents.test_page import typed_shelters
from tests.residents.webapp import make_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ALERT_RED = "rgb(153, 27, 27)"
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    from playwright.async_api import async_playwright
    assert shutil.which(CHROMIUM), "Debian chromium is required: apt-get install -y chromium"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


async def test_first_paint_needs_only_the_html_and_is_right_without_javascript(browser, zones):
    """One round trip: with scripts off and every request but the document refused, the alert is there,
    styled (computed colours), with role=alert and the shelters."""
    app, notifier, _ = make_app(zones, typed_shelters(zones))
    a = alert(1, signal=Signal.CHEMICAL)
    await notifier.on_zone_state(a, states(a))
    async with serve_app(app) as base:
        ctx = await browser.new_context(java_script_enabled=False, viewport={"width": 412, "height": 915},
                                        color_scheme="dark")
        page = await ctx.new_page()
        refused: list[str] = []

        async def only_the_document(route):
            if route.request.resource_type == "document":
                await route.continue_()
            else:
                refused.append(route.request.url)
                await route.abort()
        await page.route("**/*", only_the_document)
        await page.goto(f"{base}/?zone=kyiv-podil&lang=en", wait_until="domcontentloaded")
        assert await page.text_content("#status") == "Chemical hazard — stay indoors"
        assert await page.get_attribute("#state", "role") == "alert"
        bg = await page.eval_on_selector("#state", "e => getComputedStyle(e).backgroundColor")
        fg = await page.eval_on_selector("#status", "e => getComputedStyle(e).color")
        body = await page.eval_on_selector("body", "e => getComputedStyle(e).backgroundColor")
        assert (bg, fg, body) == (ALERT_RED, "rgb(255, 255, 255)", "rgb(11, 15, 23)")  # dark theme applied
        assert await page.eval_on_selector_all("#shelter-list li", "els => els.map(e => e.dataset.id)") == [
            "s-building"]
        assert "No alert" not in await page.inner_text("body")
        assert all("/favicon.ico" in u or "/manifest" in u for u in refused), refused  # nothing needed
        await ctx.close()


async def test_page_loads_within_budget_from_its_own_origin_and_goes_live(browser, zones):
    app, notifier, _ = make_app(zones, typed_shelters(zones), keepalive_s=1.0)
    async with serve_app(app) as base:
        ctx = await browser.new_context(locale="uk-UA")
        page = await ctx.new_page()
        sizes: dict[str, int] = {}
        bad: list[str] = []

        async def on_response(r):
            if r.status >= 400:
                bad.append(f"{r.status} {r.url}")
            if "/api/" not in r.url and r.request.resource_type != "eventsource":
                sizes[r.url] = len(await r.body())
        page.on("response", on_response)
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base) else None)
        await page.goto(f"{base}/?zone=kyiv-podil")
        await page.wait_for_selector("#fresh[data-state=live]")
        assert await page.text_content("#status") == "Немає тривоги"
        a = alert(1)
        await notifier.on_zone_state(a, states(a))  # arrives over SSE, rendered by the server
        await page.wait_for_selector("#state[data-status=active]")
        assert await page.text_content("#status") == "Повітряна тривога — негайно йдіть в укриття"
        # the rendered state, the full state on connect, then the change
        assert [s["status"] for s in await page.evaluate("window.dozorSeen")] == ["idle", "idle", "active"]
        await page.wait_for_timeout(1500)  # a heartbeat comes: still live, no "connection lost"
        assert await page.get_attribute("#fresh", "data-state") == "live" and await page.is_hidden("#lost")
        page_bytes = sum(n for u, n in sizes.items() if not u.endswith("/sw.js"))
        assert page_bytes < 50_000, sizes
        assert not bad and not outside, (bad, outside)
        await ctx.close()


async def test_use_my_location_marks_the_map_and_orders_shelters_by_distance(browser, zones):
    app, _, _ = make_app(zones, typed_shelters(zones))
    async with serve_app(app) as base:
        ctx = await browser.new_context(geolocation={"latitude": 50.46, "longitude": 30.52},
                                        permissions=["geolocation"], locale="en-GB")
        page = await ctx.new_page()
        await page.goto(f"{base}/?zone=kyiv-podil&lang=en")
        await page.click("#locate")
        await page.wait_for_selector("#me[visibility=visible]", state="attached")
        cx = float(await page.get_attribute("#me", "cx"))
        assert 0 < cx < 400
        ids = await page.eval_on_selector_all("#shelter-list li", "els => els.map(e => e.dataset.id)")
        assert ids[0] == "s-building"  # 30.52 is nearest the last of the row of shelters
        assert "m" in await page.text_content("#shelter-list li .dist")
        await ctx.close()


async def test_service_worker_shows_a_pushed_state_and_tells_the_page(browser, zones):
    """CDP ServiceWorker.deliverPushMessage fires a real push event in the page's service worker."""
    app, notifier, _ = make_app(zones, typed_shelters(zones))
    async with serve_app(app) as base:
        ctx = await browser.new_context(locale="uk-UA")
        await ctx.grant_permissions(["notifications"], origin=base)
        page = await ctx.new_page()
        cdp = await ctx.new_cdp_session(page)
        versions: list[dict] = []
        cdp.on("ServiceWorker.workerVersionUpdated", lambda e: versions.extend(e["versions"]))
        await cdp.send("ServiceWorker.enable")
        await page.goto(f"{base}/?zone=kyiv-podil")
        assert await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        for _ in range(100):
            active = [v for v in versions if v.get("status") == "activated"]
            if active:
                break
            await page.wait_for_timeout(50)
        assert active, f"no activated service worker: {versions}"
        a = alert(1)
        fetched: list[str] = []
        page.on("request", lambda r: fetched.append(r.url) if "/state" in r.url else None)
        await cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": base + "/", "registrationId": active[0]["registrationId"],
            "data": json.dumps(a.public_payload("kyiv-podil", 1))})
        await page.wait_for_selector("body[data-last-push='1']")
        for _ in range(100):  # the page asks the hub for the full state the push announced
            if fetched:
                break
            await page.wait_for_timeout(50)
        assert fetched == [f"{base}/api/v1/zones/kyiv-podil/state"]
        await ctx.close()


async def test_a_stream_down_for_minutes_says_so_in_words_and_keeps_the_last_state(browser, zones):
    """Playwright's fake clock moves the page's time; the hub really goes away (its server stops)."""
    app, notifier, _ = make_app(zones, typed_shelters(zones), keepalive_s=1.0)
    ctx = await browser.new_context(locale="en-GB")
    page = await ctx.new_page()
    await page.clock.install()
    async with serve_app(app) as base:
        await page.goto(f"{base}/?zone=kyiv-podil&lang=en")
        await page.wait_for_selector("#fresh[data-state=live]")
        a = alert(1)
        await notifier.on_zone_state(a, states(a))
        await page.wait_for_selector("#state[data-status=active]")
    # the hub is gone: no heartbeat, no state; time passes
    await page.clock.fast_forward("03:10")
    await page.wait_for_selector("#lost[data-kind=lost]")
    assert await page.text_content("#lost") == (
        "Connection lost 3 min ago — information may be out of date. Retrying…")
    assert await page.eval_on_selector("#lost", "e => getComputedStyle(e).backgroundColor") == "rgb(253, 224, 71)"
    assert await page.text_content("#status") == "Air raid — go to a shelter now"  # the last known state stays
    await ctx.close()
