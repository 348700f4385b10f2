"""Screenshots of the resident page in every state, from a real hub, broker and city, in Debian Chromium.

    python -m bench.screens --out docs/screens --json

Starts Mosquitto, a `dozor hub run` process and a small simulated city (gateways driving sirens on ptys), then
drives the page as residents see it while an operator runs `dozor alert ...`: idle, air raid, JavaScript
disabled, all-clear, chemical, exercise (resident and tester), hub down, offline reload. Phone (412x915,
Ukrainian, dark theme) and desktop (1366x900, English, light theme). Writes `<state>-<phone|desktop>.jpg`
under --out and, with --json, prints what the pages showed (DOM text, computed colours, contrast failures,
failed or external requests) so tests assert on that, not on pixels.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
VIEWS = {"phone": ({"width": 412, "height": 915}, "uk", "dark"),
         "desktop": ({"width": 1366, "height": 900}, "en", "light")}
NAMES = [{"uk": "Поділ", "en": "Podil"}, {"uk": "Оболонь", "en": "Obolon"}]
SHELTER_TYPES = ["bomb_shelter", "metro", "basement", "parking", "building"]
SHELTER_NAMES = {"bomb_shelter": ("Сховище школи № 124", "School No. 124 bomb shelter"),
                 "metro": ("Станція метро «Контрактова площа»", "Kontraktova Ploshcha metro station"),
                 "basement": ("Підвал бібліотеки", "Library basement"),
                 "parking": ("Підземний паркінг ТЦ", "Mall underground car park"),
                 "building": ("Верхні поверхи ратуші", "Town hall, upper floors")}

# WCAG 2 contrast of every visible text node against its effective background (AA: 4.5, large text 3).
CONTRAST_JS = """() => {
  const lin = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = (c) => 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
  const parse = (s) => { const m = s.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(',').map(parseFloat); return { rgb: p.slice(0, 3), a: p.length > 3 ? p[3] : 1 }; };
  const bgOf = (el) => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0.5) return c.rgb; } return [255, 255, 255]; };
  const bad = [], w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let checked = 0;
  while (w.nextNode()) {
    const t = w.currentNode, el = t.parentElement;
    if (!t.textContent.trim() || !el || el.closest('svg,script,style')) continue;
    const r = el.getBoundingClientRect(), cs = getComputedStyle(el);
    if (!r.width || !r.height || cs.visibility !== 'visible') continue;
    const fg = parse(cs.color).rgb, bg = bgOf(el), a = lum(fg), b = lum(bg);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), size = parseFloat(cs.fontSize);
    const large = size >= 24 || (parseInt(cs.fontWeight) >= 700 && size >= 18.66);
    checked++;
    if (ratio < (large ? 3 : 4.5)) bad.push({ text: t.textContent.trim().slice(0, 40), ratio: +ratio.toFixed(2) });
  }
  return { checked, bad };
}"""

STATE_JS = """() => {
  const q = (s) => document.querySelector(s), txt = (s) => (q(s) ? q(s).textContent.trim() : null);
  const st = q('#state'), cs = st ? getComputedStyle(st) : null;
  return { status: txt('#status'), headline: txt('#headline'), message: txt('#message'), exercise: txt('#exercise'),
    notice: txt('#state .notice'), data_status: st && st.dataset.status, role: st && st.getAttribute('role'),
    aria_live: st && st.getAttribute('aria-live'), state_bg: cs && cs.backgroundColor, status_color: q('#status') ? getComputedStyle(q('#status')).color : null,
    live_text: txt('#live'), started: txt('#started'), ended: txt('#ended'), duration: txt('#duration'),
    guidance: [...document.querySelectorAll('#guidance li')].map((e) => e.textContent),
    shelters: [...document.querySelectorAll('#shelter-list li')].map((e) => ({ id: e.dataset.id, type: e.dataset.type })),
    shelter_note: txt('#shelter-note'), lost: q('#lost') && !q('#lost').hidden ? txt('#lost') : null,
    lost_kind: q('#lost') ? q('#lost').dataset.kind || null : null,
    lost_bg: q('#lost') ? getComputedStyle(q('#lost')).backgroundColor : null,
    fresh: txt('#fresh'), zone_name: txt('#zone-name'), map_shelters: document.querySelectorAll('#map .sh').length,
    history24: [...document.querySelectorAll('#h24 tbody tr')].map((r) => [...r.cells].map((c) => c.textContent)),
    headings: [...document.querySelectorAll('h1,h2,h3')].map((e) => e.textContent.trim()),
    body_bg: getComputedStyle(document.body).backgroundColor, body_color: getComputedStyle(document.body).color,
    me_visible: q('#me') ? q('#me').getAttribute('visibility') : null, ready: document.body.dataset.ready || null };
}"""


def _city_files(root: Path, plan: Any) -> list[dict[str, Any]]:
    zones = plan.zones_config()
    feats = []
    for z, zone in enumerate(zones):
        zone["names"] = NAMES[z % len(NAMES)]
        (lon0, lat0), (lon1, _), (_, lat1) = zone["polygon"]["coordinates"][0][:3]
        for i, kind in enumerate(SHELTER_TYPES):
            uk, en = SHELTER_NAMES[kind]
            feats.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [
                lon0 + (lon1 - lon0) * (0.15 + 0.17 * i), lat0 + (lat1 - lat0) * (0.2 + 0.15 * ((i * 3) % 5))]},
                "properties": {"id": f"{zone['id']}-{kind}", "zone": zone["id"], "type": kind, "capacity": 100 + 50 * i,
                               "name": {"uk": uk, "en": en}}})
    (root / "zones.json").write_text(json.dumps(zones, ensure_ascii=False))
    (root / "shelters.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats},
                                                      ensure_ascii=False))
    return zones


async def _cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    dozor = str(Path(sys.executable).with_name("dozor"))
    proc = await asyncio.create_subprocess_exec(dozor, *args, "--json", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, env={**os.environ, **env})
    out, err = await proc.communicate()
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"dozor {' '.join(args)} failed ({proc.returncode}): {err.decode()[-500:]}")
    return json.loads(out)


async def capture(out: Path, work: Path) -> dict[str, Any]:
    """Run the whole scenario; returns {state: {view: observations}} plus request logs."""
    from playwright.async_api import async_playwright

    from dozor.commands.sim_city import enrolling_factory, hub_keys_from
    from hub.identity import Role, UserStore
    from simulators.brokers import Mosquitto, free_port
    from simulators.city import City, CityPlan

    plan = CityPlan(gateways=2, sirens_per_gateway=1, zones=2)
    zone = _city_files(work, plan)[0]["id"]
    port = free_port()
    report: dict[str, Any] = {"states": {}, "failed": [], "external": [], "screens": [], "zone": zone}
    with Mosquitto() as broker:
        (work / "hub.toml").write_text(
            f'[hub]\nstate_dir = "hub"\napi_port = {port}\nzones = "zones.json"\nconfirm_deadline_s = 5\n'
            f'all_clear_duration_s = 600\n[mqtt]\nurl = "{broker.url}"\n'
            '[two_person]\nactual = []\n'  # a page bench with one operator: no second person to confirm
            f'[residents]\npublic_url = "http://127.0.0.1:{port}"\nshelters_file = "shelters.geojson"\n'
            'heartbeat_s = 2\n')
        dozor = str(Path(sys.executable).with_name("dozor"))
        from hub.identity import Role, UserStore

        users = UserStore.in_state_dir(work / "hub")  # a hub refuses to start without users
        _, token = users.add("screens", Role.operator)
        users.close()
        log = (work / "hub.log").open("wb")
        hub = await asyncio.create_subprocess_exec(dozor, "hub", "run", "--config", str(work / "hub.toml"),
                                                   stdout=asyncio.subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        city = None
        try:
            async with httpx.AsyncClient() as http:
                for _ in range(300):
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(f"{base}/healthz")).status_code == 200:
                            break
                    await asyncio.sleep(0.05)
                else:
                    raise RuntimeError("hub did not come up: " + (work / "hub.log").read_text()[-2000:])
            city = await City(plan, broker.url, hub_keys_from(work / "hub", []), work / "city", enrolling_factory(work / "hub"),
                              spinup_s=0.2, heartbeat_s=1.0).start()
            env = {"DOZOR_HUB_URL": base, "DOZOR_TOKEN": token}
            for _ in range(200):
                gws = await _cli(env, "gateways")
                if sum(g["state"] == "online" for g in gws) == plan.gateways:
                    break
                await asyncio.sleep(0.1)
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                pages: dict[str, Any] = {}
                for name, (vp, lang, scheme) in {**VIEWS, "tester": VIEWS["phone"]}.items():
                    ctx = await browser.new_context(viewport=vp, locale="uk-UA" if lang == "uk" else "en-GB",
                                                    color_scheme=scheme, service_workers="allow")
                    page = await ctx.new_page()
                    page.on("response", lambda r: report["failed"].append(f"{r.status} {r.url}")
                            if r.status >= 400 else None)
                    page.on("request", lambda r: report["external"].append(r.url)
                            if not r.url.startswith(base) else None)
                    await page.goto(f"{base}/?zone={zone}&lang={lang}" + ("&tester=1" if name == "tester" else ""))
                    await page.wait_for_selector("body[data-ready='1']")
                    await page.evaluate("navigator.serviceWorker.ready.then(() => true)")
                    await page.wait_for_selector("#fresh[data-state=live]")
                    pages[name] = page

                async def shoot(state: str, views: tuple[str, ...] = ("phone", "desktop")) -> None:
                    for v in views:
                        page = pages[v]
                        obs = await page.evaluate(STATE_JS)
                        obs["contrast"] = await page.evaluate(CONTRAST_JS)
                        report["states"].setdefault(state, {})[v] = obs
                        name = f"{state}-{v}.jpg" if v != "tester" else f"{state}-tester-phone.jpg"
                        await page.screenshot(path=str(out / name), full_page=True, type="jpeg", quality=70)
                        report["screens"].append(name)

                async def until(selector: str, views: tuple[str, ...] = ("phone", "desktop", "tester")) -> None:
                    for v in views:
                        await pages[v].wait_for_selector(selector, timeout=15_000)

                await shoot("idle")
                raid = await _cli(env, "alert", "start", "--zone", zone, "--signal", "air-raid", "--actual", "--duration", "600",
                                  "--message-uk", "Ракетна загроза. Негайно в укриття.",
                                  "--message-en", "Missile threat. Go to a shelter now.", "--wait", "10")
                await until("#state[data-status=active][data-signal=air-raid]")
                await shoot("air-raid")
                # JavaScript off: the server's HTML alone must say it
                for v, (vp, lang, scheme) in VIEWS.items():
                    ctx = await browser.new_context(viewport=vp, java_script_enabled=False, color_scheme=scheme)
                    nojs = await ctx.new_page()
                    await nojs.goto(f"{base}/?zone={zone}&lang={lang}")
                    obs = await nojs.evaluate(STATE_JS)
                    obs["contrast"] = await nojs.evaluate(CONTRAST_JS)
                    report["states"].setdefault("no-javascript", {})[v] = obs
                    await nojs.screenshot(path=str(out / f"no-javascript-{v}.jpg"), full_page=True, type="jpeg",
                                          quality=70)
                    report["screens"].append(f"no-javascript-{v}.jpg")
                    await ctx.close()
                await _cli(env, "alert", "all-clear", raid["id"], "--wait", "10")
                await until("#state[data-status=all_clear]")
                await shoot("all-clear")
                chem = await _cli(env, "alert", "start", "--zone", zone, "--signal", "chemical", "--actual", "--duration", "600",
                                  "--message-uk", "Викид хлору на хімзаводі.", "--message-en",
                                  "Chlorine release at the chemical plant.", "--wait", "10")
                await until("#state[data-status=active][data-signal=chemical]")
                await shoot("chemical")
                await _cli(env, "alert", "stop", chem["id"], "--wait", "10")
                await _cli(env, "alert", "start", "--zone", zone, "--signal", "air-raid", "--exercise",
                           "--duration", "600", "--message-uk", "Навчання цивільного захисту.",
                           "--message-en", "Civil protection drill.", "--wait", "10")
                await until("#state[data-status=exercise]", ("phone", "desktop"))
                await until("#state[data-mode=exercise][data-status=active]", ("tester",))
                await shoot("exercise")
                await shoot("exercise", ("tester",))
                hub.terminate()
                await hub.wait()
                await until("#lost[data-kind=lost]", ("phone", "desktop"))
                await shoot("hub-down")
                for v in ("phone", "desktop"):
                    await pages[v].context.set_offline(True)
                    await pages[v].reload()
                    await pages[v].wait_for_selector("#lost[data-kind=offline]", timeout=15_000)
                await shoot("offline-reload")
                await browser.close()
        finally:
            if city is not None:
                await city.stop()
            if hub.returncode is None:
                hub.terminate()
                await hub.wait()
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/screens"))
    ap.add_argument("--json", action="store_true", help="print what the pages showed as one JSON document")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dozor-screens-") as tmp:
        report = asyncio.run(capture(args.out, Path(tmp)))
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(f"{len(report['screens'])} screenshots in {args.out}")


if __name__ == "__main__":
    main()
