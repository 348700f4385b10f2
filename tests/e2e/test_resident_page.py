"""The resident page as a resident sees it: Debian Chromium on the page served by a `dozor hub run` process,
while an operator runs `dozor alert start` and `dozor alert all-clear`, and sirens answer on ptys."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from tests.e2e.test_alert_path import run_cli, system  # noqa: F401 - the shared real-parts fixture
from tests.residents.test_browser import ARGS, CHROMIUM

pytestmark = pytest.mark.integration


async def test_page_shows_the_operators_alert_then_the_all_clear(system):  # noqa: F811
    from playwright.async_api import async_playwright

    plan, city, env = system
    zone = plan.zones_config()[0]["id"]
    assert shutil.which(CHROMIUM), "Debian chromium is required: apt-get install -y chromium"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = await (await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                                    locale="uk-UA")).new_page()
            await page.goto(f"{env['DOZOR_HUB_URL']}/?zone={zone}")
            await page.wait_for_selector("#conn[data-state=live]")
            await page.wait_for_selector("#state[data-status=idle]")

            code, out, err = await run_cli("alert", "start", "--zone", zone, "--signal", "air-raid", "--json",
                                           "--message-uk", "Повітряна тривога. Йдіть в укриття.",
                                           "--message-en", "Air raid. Go to a shelter.", env=env)
            assert code == 0, err
            await page.wait_for_selector("#state[data-status=active]", timeout=10_000)
            assert await page.text_content("#status") == "ТРИВОГА"
            assert not await page.is_visible("#exercise")

            alert_id = __import__("json").loads(out)["id"]
            code, _, err = await run_cli("alert", "all-clear", alert_id, "--json", env=env)
            assert code == 0, err
            await page.wait_for_selector("#state[data-status=all_clear]", timeout=10_000)
            assert await page.text_content("#status") == "ВІДБІЙ ТРИВОГИ"
            seen = await page.evaluate("window.dozorSeen")
            statuses = [s["status"] for s in seen]
            assert statuses.index("active") < statuses.index("all_clear")  # in that order, nothing lost
            await page.screenshot(path="/tmp/dozor-e2e-resident-page.png", full_page=True)
        finally:
            await browser.close()
    await asyncio.sleep(0)
