"""The resident page in a real browser: Debian Chromium driven by Playwright (never `playwright install`)."""

from __future__ import annotations

import json
import shutil

import pytest

from contract.models import Mode, ZoneStatus
from hub.residents.loopback import serve_app
from tests.residents.conftest import alert, states
from tests.residents.webapp import make_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright
    assert shutil.which(CHROMIUM), "Debian chromium is required: apt-get install -y chromium"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        await b.close()


async def test_page_shows_the_alert_then_the_all_clear_and_never_an_exercise(browser, zones, shelters, tmp_path):
    app, notifier, _ = make_app(zones, shelters)
    async with serve_app(app) as base:
        ctx = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                        locale="uk-UA")
        page = await ctx.new_page()
        await page.goto(f"{base}/?zone=kyiv-podil")
        await page.wait_for_selector("#conn[data-state=live]")
        await page.wait_for_selector("#state[data-status=idle]")
        assert await page.text_content("#status") == "Немає тривоги"
        assert await page.locator("#shelter-list li").count() == 3

        a = alert(1)
        await notifier.on_zone_state(a, states(a))
        await page.wait_for_selector("#state[data-status=active]")
        assert await page.text_content("#status") == "ТРИВОГА"
        assert await page.text_content("#headline") == "Повітряна тривога"
        assert not await page.is_visible("#exercise")
        await page.screenshot(path=str(tmp_path / "alert.png"), full_page=True)
        shutil.copy(tmp_path / "alert.png", "/tmp/dozor-residents-alert.png")

        ex = alert(1, mode=Mode.EXERCISE, aid="EX-9")
        await notifier.on_zone_state(ex, states(ex, zone_version=2))
        clear = alert(2, status=ZoneStatus.ALL_CLEAR)
        await notifier.on_zone_state(clear, states(clear, zone_version=3))
        await page.wait_for_selector("#state[data-status=all_clear]")
        assert await page.text_content("#status") == "ВІДБІЙ ТРИВОГИ"
        await page.click("#lang-en")
        assert await page.text_content("#status") == "ALL CLEAR"
        assert await page.text_content("#headline") == "All clear"
        seen = await page.evaluate("window.dozorSeen")
        assert [s["status"] for s in seen] == ["idle", "active", "all_clear", "all_clear"]
        assert all(s["mode"] != "exercise" for s in seen)  # the public page never showed the exercise
        await ctx.close()


async def test_tester_page_shows_an_exercise_clearly_marked(browser, zones, shelters):
    app, notifier, _ = make_app(zones, shelters)
    async with serve_app(app) as base:
        ctx = await browser.new_context(locale="en-GB")
        page = await ctx.new_page()
        await page.goto(f"{base}/?zone=kyiv-podil")
        await page.wait_for_selector("#conn[data-state=live]")
        await page.check("#tester")
        await page.wait_for_selector("#conn[data-state=live]")
        ex = alert(1, mode=Mode.EXERCISE, aid="EX-1")
        await notifier.on_zone_state(ex, states(ex))
        await page.wait_for_selector("#state[data-status=active]")
        assert await page.is_visible("#exercise")
        assert await page.text_content("#exercise") == "EXERCISE — NOT A REAL ALERT"
        assert await page.text_content("#status") == "EXERCISE ALERT"  # never the plain red "ALERT"
        assert (await page.text_content("#headline")).startswith("[EXERCISE]")
        await page.screenshot(path="/tmp/dozor-residents-exercise.png", full_page=True)
        await ctx.close()


async def test_geolocation_picks_the_zone_and_lists_the_nearest_shelter_first(browser, zones, shelters):
    app, _, _ = make_app(zones, shelters)
    async with serve_app(app) as base:
        ctx = await browser.new_context(geolocation={"latitude": 50.512, "longitude": 30.499},
                                        permissions=["geolocation"], locale="en-GB")
        page = await ctx.new_page()
        await page.goto(f"{base}/")
        await page.wait_for_selector("body[data-ready='1']")
        await page.click("#locate")
        await page.wait_for_function("document.getElementById('zone').value === 'kyiv-obolon'")
        await page.wait_for_function("document.querySelectorAll('#shelter-list li').length === 2")
        ids = await page.eval_on_selector_all("#shelter-list li", "els => els.map(e => e.dataset.id)")
        assert ids == ["obolon-tc-dream", "obolon-metro-obolon"]
        assert "km" in await page.text_content("#shelter-list li") or " m" in await page.text_content(
            "#shelter-list li")
        await ctx.close()


async def test_service_worker_shows_a_pushed_state_and_tells_the_page(browser, zones, shelters):
    """CDP ServiceWorker.deliverPushMessage fires a real push event in the page's service worker."""
    app, _, _ = make_app(zones, shelters)
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
        payload = alert(1).public_payload("kyiv-podil", 5)
        await cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": base + "/", "registrationId": active[0]["registrationId"], "data": json.dumps(payload)})
        await page.wait_for_selector("body[data-last-push='5']")
        await page.wait_for_selector("#state[data-status=active]")
        assert await page.text_content("#headline") == "Повітряна тривога"
        await ctx.close()
