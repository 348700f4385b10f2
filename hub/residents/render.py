"""Server-side rendering of the resident page: correct from the first byte, with or without JavaScript.

``render_live`` draws the part that changes with the zone's state (the state box, what to do, the shelters
that fit the threat, the map); ``render_page`` wraps it with the freshness line, history, zone choice and
the inline CSS, so the first response alone paints the page (one round trip). The live stream carries the
same ``render_live`` fragment per language, so the browser never renders state on its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo as TZ

from hub.residents.geo import ZoneInfo
from hub.residents.guidance import GuidanceBook
from hub.residents.history import DAY, PastAlert
from hub.residents.map import render_map
from hub.residents.shelters import Shelter, shelters_for

CSS = (Path(__file__).with_name("static") / "style.css").read_text(encoding="utf-8")
T: dict[str, dict[str, str]] = {
    "uk": {"title": "Тривоги у вашому районі", "idle": "Немає тривоги", "cancelled": "Повідомлення скасовано",
           "exercise_banner": "НАВЧАННЯ — НЕ СПРАВЖНЯ ТРИВОГА", "todo": "Що робити",
           "shelters": "Укриття, що підходять зараз", "shelters_idle": "Укриття у вашому районі",
           "no_shelters": "Укриттів, що підходять, у цьому районі не вказано.", "started": "Початок",
           "ended": "Кінець", "duration": "Тривалість", "ongoing": "триває", "zone": "Район", "show": "Показати",
           "locate": "Моє місцезнаходження", "map": "Мапа району та укриттів", "history": "Історія тривог",
           "h24": "За останні 24 години", "d7": "За останні 7 днів", "none24": "За останні 24 години нічого не записано.",
           "none7": "За останні 7 днів нічого не записано.", "updated": "Оновлено", "live": "наживо",
           "connecting": "з'єднання…", "lost_now": "З'єднання втрачено щойно — інформація може бути застарілою. Повторюємо спробу…",
           "lost": "З'єднання втрачено {n} хв тому — інформація може бути застарілою. Повторюємо спробу…",
           "offline": "Ви офлайн — показано останні відомі дані станом на {t}.", "min": "хв", "h": "год",
           "ago": "{n} хв тому", "just_now": "щойно", "tester": "Я тестувальник: показувати навчання (з позначкою)",
           "push": "Отримувати сповіщення", "exercise": "навчання", "you": "Ви тут",
           "outside": "Ваше місце поза відомими районами.", "geo_fail": "Не вдалося визначити місце.",
           "push_ok": "Сповіщення увімкнено.", "push_no": "Сповіщення недоступні в цьому браузері.",
           "push_denied": "Сповіщення заборонено в налаштуваннях браузера.", "push_fail": "Не вдалося підписатися: ",
           "air-raid": "Повітряна тривога", "chemical": "Хімічна небезпека", "radiation": "Радіаційна небезпека",
           "test": "Перевірка сирен", "silent-test": "Тиха перевірка", "all-clear": "Відбій"},
    "en": {"title": "Alerts in your district", "idle": "No alert", "cancelled": "Alert withdrawn",
           "exercise_banner": "EXERCISE — NOT A REAL ALERT", "todo": "What to do",
           "shelters": "Shelters that apply now", "shelters_idle": "Shelters in your district",
           "no_shelters": "No suitable shelters are listed for this district.", "started": "Started",
           "ended": "Ended", "duration": "Duration", "ongoing": "ongoing", "zone": "District", "show": "Show",
           "locate": "Use my location", "map": "Map of the district and shelters", "history": "Alert history",
           "h24": "Past 24 hours", "d7": "Past 7 days", "none24": "Nothing recorded in the past 24 hours.",
           "none7": "Nothing recorded in the past 7 days.", "updated": "Updated", "live": "live",
           "connecting": "connecting…", "lost_now": "Connection lost just now — information may be out of date. Retrying…",
           "lost": "Connection lost {n} min ago — information may be out of date. Retrying…",
           "offline": "You are offline — showing the last known information, as of {t}.", "min": "min", "h": "h",
           "ago": "{n} min ago", "just_now": "just now", "tester": "I am a tester: show exercises (marked)",
           "push": "Get notifications", "exercise": "exercise", "you": "You are here",
           "outside": "Your location is outside the known districts.", "geo_fail": "Could not get your location.",
           "push_ok": "Notifications are on.", "push_no": "Notifications are not available in this browser.",
           "push_denied": "Notifications are blocked in the browser settings.", "push_fail": "Could not subscribe: ",
           "air-raid": "Air raid", "chemical": "Chemical hazard", "radiation": "Radiation hazard",
           "test": "Siren test", "silent-test": "Silent test", "all-clear": "All clear"},
}
JS_KEYS = ("lost", "lost_now", "offline", "live", "connecting", "ago", "just_now", "min", "h", "you", "outside",
           "geo_fail", "push_ok", "push_no", "push_denied", "push_fail", "updated")


@dataclass(frozen=True)
class PageContext:
    zones: Sequence[ZoneInfo]
    shelters: Sequence[Shelter]
    guidance: GuidanceBook
    tz: TZ


def duration(seconds: float, lang: str) -> str:
    m = max(0, round(seconds / 60))
    t = T[lang]
    return f"{m // 60} {t['h']} {m % 60} {t['min']}" if m >= 60 else f"{m} {t['min']}"


def _time(ts: float, ctx: PageContext, *, date: bool = False) -> str:
    d = datetime.fromtimestamp(ts, ctx.tz)
    return f'<time datetime="{d.isoformat()}">{d.strftime("%d.%m %H:%M" if date else "%H:%M")}</time>'


def _pick(m: Mapping[str, str] | None, lang: str) -> str:
    return (m or {}).get(lang) or (m or {}).get("uk") or (m or {}).get("en") or ""


def render_live(snap: Mapping[str, Any], lang: str, ctx: PageContext, now: float,
                history: Sequence[PastAlert] = ()) -> str:
    """The state box, guidance, the shelters that fit, the map and the history, for one zone view in one
    language."""
    t = T[lang]
    status, signal, mode = snap.get("status") or "idle", snap.get("signal"), snap.get("mode")
    tester_exercise = mode == "exercise" and status != "exercise"
    g = ctx.guidance.for_view(status, signal)
    if status == "cancelled":
        heading = t["cancelled"]
    elif g is not None:
        heading = _pick(g.headline, lang)
    else:
        heading = t.get(signal or "", t["idle"])
    cls = f"state {status}" + (" exercise-mode" if mode == "exercise" else "") + (f" sig-{signal}" if signal else "")
    out = [f'<section id="state" class="{cls}" data-status="{status}" data-version="{int(snap.get("version", 0))}" '
           f'data-mode="{escape(mode or "")}" data-signal="{escape(signal or "")}" role="alert" aria-live="assertive" '
           'aria-atomic="true">']
    if tester_exercise:
        out.append(f'<p id="exercise" class="exercise">{escape(t["exercise_banner"])}</p>')
        out.append(f'<p class="notice">{escape(_pick(ctx.guidance.for_view("exercise", None).headline, lang))}</p>')  # type: ignore[union-attr]
    out.append(f'<h2 id="status" class="status">{escape(heading)}</h2>')
    headline = _pick(snap.get("headline"), lang)
    if headline and headline.casefold() not in heading.casefold() and status not in ("exercise", "idle"):
        out.append(f'<p id="headline" class="headline">{escape(headline)}</p>')
    instruction = _pick(snap.get("instruction"), lang)
    if instruction and status != "exercise":
        out.append(f'<p id="message" class="message">{escape(instruction)}</p>')
    started, ended = snap.get("started"), snap.get("ended")
    if started and status in ("active", "all_clear", "cancelled") or (tester_exercise and started):
        rows = [f'<dt>{t["started"]}</dt><dd id="started">{_time(started, ctx, date=True)}</dd>']
        if ended:
            rows.append(f'<dt>{t["ended"]}</dt><dd id="ended">{_time(ended, ctx)}</dd>')
        rows.append(f'<dt>{t["duration"]}</dt><dd id="duration" data-since="{started}"'
                    f'{"" if ended else " data-live=1"}>{duration((ended or now) - started, lang)}'
                    f'{"" if ended else " (" + t["ongoing"] + ")"}</dd>')
        out.append(f'<dl class="times">{"".join(rows)}</dl>')
    out.append("</section>")
    steps = g.steps.get(lang, ()) if g is not None else ()
    if steps:
        items = "".join(f"<li>{escape(s)}</li>" for s in steps)
        out.append(f'<section id="guidance"><h2>{t["todo"]}</h2><ol>{items}</ol></section>')
    zone = str(snap.get("zone"))
    filtered = status in ("active", "all_clear") and g is not None
    if g is not None and g.shelter_types:
        fits = shelters_for(ctx.shelters, zone, signal=signal, guidance=g, filtered=True, limit=50)
    else:
        fits = []
    if g is not None and g.shelter_types:
        title = t["shelters"] if filtered else t["shelters_idle"]
        out.append(f'<section id="shelters"><h2>{title}</h2>')
        note = _pick(g.shelter_note, lang)
        if note:
            out.append(f'<p id="shelter-note" class="note">{escape(note)}</p>')
        if fits:
            out.append('<ol id="shelter-list">')
            for s in fits:
                bits = [escape(_pick(s["address"], lang))] if s["address"] else []
                if s.get("capacity"):
                    bits.append(f'{s["capacity"]} {"місць" if lang == "uk" else "places"}')
                out.append(f'<li data-id="{escape(s["id"])}" data-lat="{s["lat"]}" data-lon="{s["lon"]}" '
                           f'data-type="{escape(s.get("type") or "")}"><strong>{escape(_pick(s["name"], lang))}</strong>'
                           + (" — " + ", ".join(bits) if bits else "") + '<span class="dist"></span></li>')
            out.append("</ol>")
        else:
            out.append(f'<p id="no-shelters" class="note">{t["no_shelters"]}</p>')
        svg = render_map(ctx.zones, zone, fits, lang, t["map"])
        if svg:
            out.append(f'<figure class="map">{svg}<figcaption id="locate-msg" aria-live="polite"></figcaption>'
                       f'</figure><button type="button" id="locate" hidden>{t["locate"]}</button>')
        out.append("</section>")
    out.append(_history(history, lang, ctx, now))
    return "".join(out)


def _history(rows: Sequence[PastAlert], lang: str, ctx: PageContext, now: float) -> str:
    t = T[lang]

    def table(items: Sequence[PastAlert], empty: str, ident: str) -> str:
        if not items:
            return f'<p class="note" id="{ident}-none">{empty}</p>'
        body = "".join(
            f'<tr data-alert="{escape(p.id)}"><td>{escape(t.get(p.signal, p.signal))}'
            f'{" (" + t["exercise"] + ")" if p.mode == "exercise" else ""}</td>'
            f'<td>{_time(p.started, ctx, date=True)}</td>'
            f'<td>{_time(p.ended, ctx) if p.ended else t["ongoing"]}</td>'
            f'<td>{duration(p.duration_s(now), lang)}</td></tr>' for p in items)
        return (f'<table id="{ident}"><thead><tr><th scope="col"></th><th scope="col">{t["started"]}</th>'
                f'<th scope="col">{t["ended"]}</th><th scope="col">{t["duration"]}</th></tr></thead>'
                f"<tbody>{body}</tbody></table>")

    day = [p for p in rows if now - (p.ended or now) <= DAY]
    return (f'<section id="history"><h2>{t["history"]}</h2><h3>{t["h24"]}</h3>{table(day, t["none24"], "h24")}'
            f'<details><summary>{t["d7"]} ({len(rows)})</summary>{table(rows, t["none7"], "d7")}</details></section>')


def render_page(snap: Mapping[str, Any], *, zone: str, lang: str, tester: bool, ctx: PageContext,
                history: Sequence[PastAlert], now: float, heartbeat_s: float, push: bool) -> str:
    t = T[lang]
    other = "en" if lang == "uk" else "uk"
    q = {"zone": zone, **({"tester": "1"} if tester else {})}
    zname = next((_pick(z.name, lang) for z in ctx.zones if z.id == zone), zone)
    options = "".join(f'<option value="{escape(z.id)}"{" selected" if z.id == zone else ""}>'
                      f"{escape(_pick(z.name, lang))}</option>" for z in ctx.zones)
    data = {"zone": zone, "lang": lang, "tester": tester, "heartbeat": heartbeat_s, "rendered": now, "push": push,
            "tz": ctx.tz.key,
            "version": snap.get("version", 0), "status": snap.get("status"), "mode": snap.get("mode"),
            "i18n": {k: t[k] for k in JS_KEYS}}
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    updated = datetime.fromtimestamp(now, ctx.tz).strftime("%H:%M:%S")
    return f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="color-scheme" content="light dark">
<meta name="theme-color" content="#111827">
<title>{escape(zname)} — {t["title"]}</title>
<link rel="icon" href="/favicon.ico" type="image/svg+xml">
<link rel="manifest" href="/manifest.webmanifest">
<style>{CSS}</style>
</head>
<body data-zone="{escape(zone)}">
<header><h1>{t["title"]}: <span id="zone-name">{escape(zname)}</span></h1>
<nav class="lang"><a id="lang-{other}" lang="{other}" href="/?{escape(urlencode({**q, "lang": other}))}">{"УКР" if other == "uk" else "ENG"}</a></nav></header>
<p id="fresh" class="fresh" data-state="rendered" role="status">{t["updated"]} <time id="fresh-time" datetime="{datetime.fromtimestamp(now, ctx.tz).isoformat()}">{updated}</time> <span id="conn"></span></p>
<p id="lost" class="lost" role="alert" hidden></p>
<main>
<div id="live">{render_live(snap, lang, ctx, now, history)}</div>
<form class="zone-pick" method="get" action="/"><label for="zone">{t["zone"]}</label>
<select id="zone" name="zone">{options}</select><input type="hidden" name="lang" value="{lang}">
<label class="tester"><input type="checkbox" id="tester" name="tester" value="1"{" checked" if tester else ""}> {t["tester"]}</label>
<button type="submit" id="show">{t["show"]}</button></form>
<section class="push" id="push-box" hidden><button type="button" id="push">{t["push"]}</button><p id="push-msg" aria-live="polite"></p></section>
</main>
<footer><a href="/cap/feed.xml">CAP 1.2</a> · dozor</footer>
<script id="dozor-data" type="application/json">{payload}</script>
<script src="/static/app.js" defer></script>
</body>
</html>"""
