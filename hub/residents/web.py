"""The residents' HTTP surface, as one FastAPI APIRouter the hub mounts.

Public: the page (/ , server-rendered for ``?zone=&lang=&tester=``, else the cookies the page sets; /sw.js,
/favicon.ico, /static/*), zone state and live SSE (the full state on connect, each change, and a
``heartbeat`` event every ``keepalive_s``), shelters, locate-by-position, Web Push subscriptions, the CAP feed.
Operator (bearer token): channel health, CAP import and promotion.
Every bad input gets a clear 4xx JSON error and a counter; nothing here raises past the router.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import Counter as PromCounter
from pydantic import ValidationError

from hub.identity import Role, require
from hub.residents import cap
from hub.residents.channels.webpush import Subscriber, SubscriptionStore
from hub.residents.errors import CapError
from hub.residents.geo import ZoneInfo, parse_zones, zone_at
from hub.residents.guidance import GuidanceBook
from hub.residents.history import History
from hub.residents.models import SubscribeRequest, UnsubscribeRequest
from hub.residents.notifier import ResidentNotifier
from hub.residents.render import TZ, PageContext, render_live, render_page
from hub.residents.shelters import Shelter, shelters_for
from hub.residents.state import Snapshot

STATIC = Path(__file__).with_name("static")
BAD_INPUT = PromCounter("dozor_resident_bad_input", "Rejected resident/CAP API inputs", ["where", "reason"])
MAX_BODY = 64 * 1024
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml",
          ".webmanifest": "application/manifest+json", ".png": "image/png"}

# Push services browsers use. A subscription endpoint elsewhere is refused, so the public subscription API
# cannot make the hub POST to arbitrary (e.g. internal) URLs.
DEFAULT_PUSH_HOSTS: tuple[str, ...] = ("fcm.googleapis.com", "android.googleapis.com", "push.services.mozilla.com",
                                       "notify.windows.com", "push.apple.com")

PromoteHook = Callable[[cap.Advisory], Awaitable[Mapping[str, Any]]]


class _Bad(Exception):  # noqa: N818 - internal control flow, turned into a 4xx response
    def __init__(self, status: int, where: str, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.where, self.reason, self.detail = status, where, reason, detail


def create_router(*, notifier: ResidentNotifier, zones: Sequence[ZoneInfo | Mapping[str, Any]] = (),
                  shelters: Sequence[Shelter] = (), subscriptions: SubscriptionStore | None = None,
                  vapid_public_key: str | None = None, token: str | None = None, sender: str = "dozor",
                  public_url: str = "", on_promote: PromoteHook | None = None,
                  keepalive_s: float = 15.0, push_hosts: Sequence[str] | None = DEFAULT_PUSH_HOSTS,
                  allow_http_push: bool = False, guidance: GuidanceBook | None = None,
                  history: History | None = None, timezone: str = "Europe/Kyiv", identity: bool = False) -> APIRouter:
    """``push_hosts=None`` accepts any push-service host; ``allow_http_push`` only for tests on loopback.
    ``keepalive_s`` is the live stream's heartbeat: the page says the connection is lost after one missed beat.
    ``identity=True`` (in the hub): the operator routes declare their roles through ``hub.identity.require``
    (users and roles) instead of comparing one shared ``token``."""
    op_deps = [Depends(require(Role.operator))] if identity else []
    view_deps = [Depends(require(Role.viewer))] if identity else []
    zinfo = [z if isinstance(z, ZoneInfo) else parse_zones([z])[0] for z in zones]
    ctx = PageContext(zinfo, shelters, guidance or GuidanceBook(), TZ(timezone))
    hist = history or History(None)
    hist.overlay = notifier.store.times  # the engine hook's word on start/end beats a not yet flushed store

    def decorate(snap: Snapshot, tester_view: bool) -> None:  # the rendered fragment rides along in snapshots
        now = time.time()
        past = hist.of_zone(str(snap["zone"]), tester=tester_view)
        snap["html"] = {lang: render_live(snap, lang, ctx, now, past) for lang in ("uk", "en")}

    notifier.store.decorate = decorate
    notifier.store.watchers.append(hist.invalidate)  # an alert changed: the history is read again
    by_id = {z.id: z for z in zinfo}
    for z in zinfo:
        notifier.store.known_zones.add(z.id)
    counters: Counter[str] = Counter()
    advisories: dict[str, cap.Advisory] = {}
    static_files = {p.name: p for p in STATIC.iterdir() if p.is_file()} if STATIC.is_dir() else {}
    router = APIRouter()

    def bad(exc: _Bad) -> JSONResponse:
        counters[f"{exc.where}:{exc.reason}"] += 1
        BAD_INPUT.labels(exc.where, exc.reason).inc()
        return JSONResponse({"error": exc.reason, "detail": exc.detail}, status_code=exc.status)

    def zone_or_404(zone: str, where: str) -> str:
        if zone not in by_id and zone not in notifier.store.known_zones:
            raise _Bad(404, where, "unknown_zone", f"no zone {zone[:64]!r}")
        return zone

    def coord(request: Request, name: str, lo: float, hi: float, where: str) -> float | None:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return None
        try:
            v = float(raw)
        except ValueError:
            raise _Bad(400, where, "bad_coordinate", f"{name} must be a number") from None
        if not math.isfinite(v) or not lo <= v <= hi:
            raise _Bad(400, where, "bad_coordinate", f"{name} must be within [{lo}, {hi}]")
        return v

    def tester(request: Request) -> bool:
        return request.query_params.get("tester", "") in ("1", "true", "yes")

    async def body(request: Request, where: str) -> bytes:
        data = await request.body()
        if len(data) > MAX_BODY:
            raise _Bad(413, where, "too_large", f"body over {MAX_BODY} bytes")
        return data

    def check_endpoint(endpoint: str) -> None:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" and not (allow_http_push and parts.scheme == "http"):
            raise _Bad(422, "subscribe", "endpoint_not_allowed", "push endpoint must be https")
        if push_hosts is not None and not any(host == h or host.endswith("." + h) for h in push_hosts):
            raise _Bad(422, "subscribe", "endpoint_not_allowed", f"{host[:64]!r} is not a known push service")

    def operator(request: Request, where: str) -> None:
        if identity:
            return  # checked by the route's require() dependency
        if token is None:
            raise _Bad(403, where, "disabled", "operator token not configured on this hub")
        got = request.headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
            raise _Bad(401, where, "unauthorized", "missing or wrong bearer token")

    # ---- the page -------------------------------------------------------------------------------------
    def page_args(request: Request) -> tuple[str, str, bool]:
        q, c = request.query_params, request.cookies
        zone = q.get("zone") or c.get("dozor_zone") or ""
        if zone not in by_id:
            if zone:
                counters["page:unknown_zone"] += 1
                BAD_INPUT.labels("page", "unknown_zone").inc()
            zone = zinfo[0].id if zinfo else zone
        lang = q.get("lang") or c.get("dozor_lang") or (
            "en" if request.headers.get("accept-language", "uk").lower().startswith("en") else "uk")
        lang = lang if lang in ("uk", "en") else "uk"
        tester_on = tester(request) if "zone" in q else c.get("dozor_tester") == "1"
        return zone, lang, tester_on

    @router.get("/", include_in_schema=False)
    async def page(request: Request) -> Response:
        zone, lang, tester_on = page_args(request)
        if not zone:
            return HTMLResponse("<!doctype html><title>dozor</title><p>No zones configured.</p>", status_code=503)
        snap = notifier.store.view(zone, tester=tester_on)
        body = render_page(snap, zone=zone, lang=lang, tester=tester_on, ctx=ctx,
                           history=hist.of_zone(zone, tester=tester_on), now=time.time(), heartbeat_s=keepalive_s,
                           push=subscriptions is not None and vapid_public_key is not None)
        counters["page_views"] += 1
        return HTMLResponse(body, headers={"Cache-Control": "no-cache", "Vary": "Cookie, Accept-Language"})

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return FileResponse(STATIC / "icon.svg", media_type=_TYPES[".svg"],
                            headers={"Cache-Control": "max-age=86400"})

    @router.get("/sw.js", include_in_schema=False)
    async def service_worker() -> Response:
        return FileResponse(STATIC / "sw.js", media_type=_TYPES[".js"],
                            headers={"Service-Worker-Allowed": "/", "Cache-Control": "no-cache"})

    @router.get("/manifest.webmanifest", include_in_schema=False)
    async def manifest() -> Response:
        return FileResponse(STATIC / "manifest.webmanifest", media_type=_TYPES[".webmanifest"])

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        path = static_files.get(name)
        if path is None:
            return bad(_Bad(404, "static", "not_found", "no such file"))
        return FileResponse(path, media_type=_TYPES.get(path.suffix, "application/octet-stream"),
                            headers={"Cache-Control": "no-cache"})

    @router.get("/api/v1/residents/config")
    async def config() -> dict[str, Any]:
        return {"zones": [z.public() for z in zinfo], "vapidPublicKey": vapid_public_key,
                "push": subscriptions is not None and vapid_public_key is not None, "langs": ["uk", "en"]}

    # ---- zone state, live ----------------------------------------------------------------------------
    @router.get("/api/v1/zones/{zone}/state")
    async def zone_state(zone: str, request: Request) -> Response:
        try:
            return JSONResponse(notifier.store.view(zone_or_404(zone, "state"), tester=tester(request)))
        except _Bad as exc:
            return bad(exc)

    @router.get("/api/v1/zones/{zone}/events")
    async def zone_events(zone: str, request: Request) -> Response:
        try:
            zone_or_404(zone, "events")
        except _Bad as exc:
            return bad(exc)
        listener = notifier.store.listen(zone, tester=tester(request))
        counters["sse_connects"] += 1

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\n"
                while True:
                    try:
                        async with asyncio.timeout(keepalive_s):
                            snap = await listener.next()
                    except TimeoutError:
                        beat = json.dumps({"ts": round(time.time(), 3)})
                        yield f"event: heartbeat\ndata: {beat}\n\n".encode()
                        continue
                    yield snap.sse_frame()
            finally:
                notifier.store.unlisten(listener)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.get("/api/v1/zones/{zone}/shelters")
    async def zone_shelters(zone: str, request: Request) -> Response:
        try:
            zone_or_404(zone, "shelters")
            lat = coord(request, "lat", -90, 90, "shelters")
            lon = coord(request, "lon", -180, 180, "shelters")
        except _Bad as exc:
            return bad(exc)
        return JSONResponse({"zone": zone, "shelters": shelters_for(shelters, zone, lat, lon)})

    @router.get("/api/v1/residents/locate")
    async def locate(request: Request) -> Response:
        try:
            lat = coord(request, "lat", -90, 90, "locate")
            lon = coord(request, "lon", -180, 180, "locate")
            if lat is None or lon is None:
                raise _Bad(400, "locate", "bad_coordinate", "lat and lon are required")
        except _Bad as exc:
            return bad(exc)
        hit = zone_at(zinfo, lat, lon)
        return JSONResponse({"zone": hit.id if hit else None, "name": dict(hit.name) if hit else None})

    # ---- Web Push subscriptions ------------------------------------------------------------------------
    @router.post("/api/v1/push/subscriptions")
    async def subscribe(request: Request) -> Response:
        try:
            if subscriptions is None:
                raise _Bad(503, "subscribe", "push_disabled", "Web Push is not configured on this hub")
            raw = await body(request, "subscribe")
            try:
                req = SubscribeRequest.model_validate_json(raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ()))
                reason = "bad_json" if first.get("type") == "json_invalid" else "invalid"
                raise _Bad(422, "subscribe", reason, f"{where}: {first.get('msg', '')}"[:200]) from None
            for z in req.zones:
                zone_or_404(z, "subscribe")
            check_endpoint(req.subscription.endpoint)
        except _Bad as exc:
            return bad(exc)
        subscriptions.add(Subscriber(endpoint=req.subscription.endpoint, p256dh=req.subscription.keys.p256dh,
                                     auth=req.subscription.keys.auth, zones=frozenset(req.zones),
                                     tester=req.tester, lang=req.lang))
        counters["subscribed"] += 1
        return JSONResponse({"ok": True, "zones": list(req.zones), "tester": req.tester}, status_code=201)

    @router.delete("/api/v1/push/subscriptions")
    async def unsubscribe(request: Request) -> Response:
        try:
            if subscriptions is None:
                raise _Bad(503, "unsubscribe", "push_disabled", "Web Push is not configured on this hub")
            try:
                req = UnsubscribeRequest.model_validate_json(await body(request, "unsubscribe"))
            except ValidationError:
                raise _Bad(422, "unsubscribe", "invalid", "body must be {\"endpoint\": \"...\"}") from None
        except _Bad as exc:
            return bad(exc)
        removed = subscriptions.remove(req.endpoint)
        return JSONResponse({"ok": True, "removed": removed})

    # ---- CAP ------------------------------------------------------------------------------------------
    @router.get("/cap/feed.xml")
    async def cap_feed() -> Response:
        doc = cap.render_feed(notifier.archive.latest(100), base_url=public_url, sender=sender)
        return Response(doc, media_type="application/atom+xml; charset=utf-8")

    @router.get("/cap/{ident}.xml")
    async def cap_doc(ident: str) -> Response:
        msg = notifier.archive.get(ident)
        if msg is None:  # a bare alert id gives its latest message
            same = [m for m in notifier.archive.latest(10_000) if m.id == ident]
            msg = max(same, key=lambda m: m.version) if same else None
        if msg is None:
            return bad(_Bad(404, "cap", "not_found", f"no CAP message {ident[:128]!r}"))
        try:
            doc = cap.render(msg, sender=sender, earlier=notifier.archive.earlier(msg), zones=by_id,
                             web=f"{public_url}/?zone={msg.zones[0]}" if public_url else None)
        except CapError as exc:
            return bad(_Bad(500, "cap_render", exc.reason, exc.detail))
        return Response(doc, media_type="application/cap+xml; charset=utf-8")

    @router.post("/api/v1/cap/import", dependencies=op_deps)
    async def cap_import(request: Request) -> Response:
        try:
            operator(request, "cap_import")
            raw = await body(request, "cap_import")
            try:
                adv = cap.parse_import(raw, zinfo)
            except CapError as exc:
                raise _Bad(422, "cap_import", exc.reason, exc.detail) from None
        except _Bad as exc:
            return bad(exc)
        advisories[adv.id] = adv
        while len(advisories) > 500:
            del advisories[next(iter(advisories))]
        counters["cap_imported"] += 1
        return JSONResponse(adv.model_dump(mode="json"), status_code=201)

    @router.get("/api/v1/cap/advisories", dependencies=view_deps)
    async def cap_advisories(request: Request) -> Response:
        try:
            operator(request, "advisories")
        except _Bad as exc:
            return bad(exc)
        return JSONResponse([a.model_dump(mode="json") for a in reversed(advisories.values())])

    @router.post("/api/v1/cap/advisories/{adv_id}/promote", dependencies=op_deps)
    async def cap_promote(adv_id: str, request: Request) -> Response:
        try:
            operator(request, "promote")
            adv = advisories.get(adv_id)
            if adv is None:
                raise _Bad(404, "promote", "not_found", f"no advisory {adv_id[:64]!r}")
        except _Bad as exc:
            return bad(exc)
        draft = adv.draft()
        result: Mapping[str, Any] | None = await on_promote(adv) if on_promote is not None else None
        adv.promoted = True
        return JSONResponse({"advisory": adv.id, "draft": draft, "alert": dict(result) if result else None,
                             "started": result is not None})

    # ---- operator: channel health ----------------------------------------------------------------------
    @router.get("/api/v1/residents/channels", dependencies=view_deps)
    async def channels(request: Request) -> Response:
        try:
            operator(request, "channels")
        except _Bad as exc:
            return bad(exc)
        return JSONResponse({"channels": notifier.channel_report(),
                             "subscriptions": len(subscriptions) if subscriptions is not None else None,
                             "sse_listeners": notifier.store.listener_count(),
                             "notifier": dict(notifier.counters), "state": dict(notifier.store.counters),
                             "api": dict(counters)})

    return router
