"""The hub's HTTP API (FastAPI), under /api/v1. Every route declares its role through
``hub.identity.require``; only ``PUBLIC_PATHS`` (the resident page and its data, the live stream, the CAP
feed, subscribe, /healthz) are open, and ``check_routes`` refuses to build an app where any other route
declares nothing. /metrics takes a viewer's token or the separate metrics token.

Errors are JSON ``{"error": code, "detail": message}``: 401 for a missing or wrong token, 403 for a role
that is not enough, 429 past a rate limit, 413 for a body over the cap, 400/404/409 for alert errors,
422 for request validation with readable messages. Extra routers (the residents page) are mounted through
``create_app(..., routers=[...])``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from hub.aqi import AqiError, overall
from hub.errors import RequestError
from hub.identity import Actor, RateLimited, Role, check_routes, require
from hub.ingest.latest import PM_METRICS, DeviceLatest
from hub.models import (
    AirOut,
    AirRowOut,
    AirZoneOut,
    AlertDetail,
    AlertOut,
    AlertPreview,
    AlertRequest,
    DeviceOut,
    GatewayOut,
    IndexOut,
    LatestOut,
    MetricOut,
    NodeOut,
    NodeRegistration,
    TailOut,
    TailReadingOut,
    ZoneOut,
)
from hub.violations.api import router as noise_router

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)
MODE_HINT = "use 'exercise' or 'actual'"
# open to anyone: the resident page and what it reads, the live stream, the CAP feed, subscribe, health
PUBLIC_PATHS = frozenset({
    "/", "/favicon.ico", "/sw.js", "/manifest.webmanifest", "/static/{name}", "/api/v1/residents/config",
    "/api/v1/zones/{zone}/state", "/api/v1/zones/{zone}/events", "/api/v1/zones/{zone}/shelters",
    "/api/v1/residents/locate", "/api/v1/push/subscriptions", "/cap/feed.xml", "/cap/{ident}.xml", "/healthz",
})
VIEWER = [Depends(require(Role.viewer))]
OPERATOR = Depends(require(Role.operator))
SUPERVISOR = Depends(require(Role.supervisor))



def error_response(exc: RequestError, metrics) -> JSONResponse:
    """A refused request as every API answer gives it: 401 with WWW-Authenticate, 429 with Retry-After, counted."""
    headers = {}
    if exc.status == 401:
        metrics.api_auth_failures.inc()
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    else:
        metrics.api_bad_requests.labels(exc.code).inc()
    return JSONResponse({"error": exc.code, "detail": exc.message}, status_code=exc.status, headers=headers)

def _readable(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or "request"
        msg = err.get("msg", "invalid")
        if err.get("type") == "missing":
            msg = "field required"
            if loc[:1] == ["mode"]:
                msg += f" ({MODE_HINT}: an alert is never implicitly real)"
        elif err.get("type") == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{field}: {msg}")
    return "; ".join(parts)


def create_app(hub: Hub, routers: Iterable[APIRouter] = ()) -> FastAPI:
    # bodies over [hub] max_body_bytes: 413 before they are read (FastAPI's limit, Starlette's middleware)
    app = FastAPI(title="dozor hub", version="1", docs_url=None, redoc_url=None, openapi_url=None,
                  max_body_size=hub.config.hub.max_body_bytes)
    app.state.identity = hub.identity
    metrics = hub.metrics

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.api_bad_requests.labels("invalid_request").inc()
        return JSONResponse({"error": "invalid_request", "detail": _readable(exc)}, status_code=422)

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return error_response(exc, metrics)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:  # a bug: say so clearly, log it, count it
        log.exception("API handler failed")
        metrics.api_bad_requests.labels("internal").inc()
        return JSONResponse({"error": "internal", "detail": f"hub error: {type(exc).__name__} (see the hub log)"},
                            status_code=500)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True, "mqtt": hub.mqtt.connected.is_set(), "mqtt_ingest": hub.mqtt_ingest.connected.is_set(),
                "alerts_tracking": len(hub.engine._trackers),
                "ingest": hub.ingest.stats() if hub.ingest is not None else dict(hub.pipeline.counters),
                "telemetry_cursor": hub.latest.cursor,
                "kid": hub.keys.kid, "public_key": hub.keys.public_b64,
                "role": "follower" if hub.follower is not None and hub.follower.following else "leader",
                **({"follower_refreshes": hub.follower.refreshes} if hub.follower is not None else {})}

    @app.get("/metrics", dependencies=[Depends(require(Role.viewer, metrics=True))])
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/api/v1/openapi.json", dependencies=VIEWER, include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    api = APIRouter(prefix="/api/v1")

    @api.get("/whoami", dependencies=VIEWER)
    async def whoami(request: Request) -> dict:
        """The caller: user name, the role they act in, and how they authenticated."""
        return request.state.actor.as_dict()

    @api.get("/audit", dependencies=VIEWER)
    async def audit(alert: str | None = Query(None, max_length=128), actor: str | None = Query(None, max_length=64),
                    since_seq: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=100_000)) -> list[dict]:
        """Audit chain records (oldest first), optionally about one alert or by one user."""
        return [r.as_dict() for r in hub.audit.records(since_seq=since_seq, subject=alert, actor=actor,
                                                       limit=limit)]

    @api.post("/alerts", status_code=201, response_model=AlertOut)
    async def create_alert(req: AlertRequest, actor: Actor = OPERATOR) -> AlertOut:
        """A new alert; ``status`` is ``pending_confirmation`` when the two-person rule covers it (nothing sent
        until a supervisor confirms). Audited in the chain by the engine, with the actor."""
        return await hub.engine.start(req, actor)

    @api.get("/alerts", response_model=list[AlertOut], dependencies=VIEWER)
    async def list_alerts(limit: int = Query(200, ge=1, le=10_000)) -> list[AlertOut]:
        """Newest first: the alerts in memory, then finished ones from the store."""
        return hub.engine.list(limit)

    @api.get("/alerts/pending", response_model=list[AlertOut], dependencies=VIEWER)
    async def pending_alerts() -> list[AlertOut]:
        """Requests waiting for a second person, oldest first."""
        return hub.engine.pending()

    @api.get("/alerts/{alert_id}", response_model=AlertDetail, dependencies=VIEWER)
    async def get_alert(alert_id: str, devices: bool = True) -> AlertDetail:
        """``?devices=false`` skips the per-device list (cheap enough to poll for live coverage)."""
        return hub.engine.get(alert_id, devices=devices)

    @api.get("/alerts/{alert_id}/preview", response_model=AlertPreview, dependencies=VIEWER)
    async def preview_alert(alert_id: str) -> AlertPreview:
        """What confirming it would do: zones, signal, messages, sirens, residents, alerts it would affect."""
        p = hub.engine.preview(alert_id)
        return AlertPreview(**p, residents=hub.resident_reach(p["alert"].zones))

    @api.get("/alerts/{alert_id}/log", dependencies=VIEWER)
    async def alert_log(alert_id: str) -> list[dict]:
        """The alert's own log: request, confirm, start, retries, escalations, all-clear, stop, cancel, expiry,
        each with its actor (the tamper-evident chain is GET /api/v1/audit?alert=ID)."""
        hub.engine.get(alert_id, devices=False)  # 404 for an unknown alert
        hub.engine._flush()
        return hub.store.load_audit(alert_id)

    @api.post("/alerts/{alert_id}/confirm", response_model=AlertOut)
    async def confirm_alert(alert_id: str, actor: Actor = SUPERVISOR) -> AlertOut:
        """The second person (a supervisor who did not request it), within the window: the alert is sent now."""
        return await hub.engine.confirm(alert_id, actor)

    @api.post("/alerts/{alert_id}/stop", response_model=AlertOut)
    async def stop_alert(alert_id: str, actor: Actor = OPERATOR) -> AlertOut:
        return await hub.engine.stop(alert_id, actor)

    @api.post("/alerts/{alert_id}/all-clear", response_model=AlertOut)
    async def all_clear(alert_id: str, actor: Actor = OPERATOR) -> AlertOut:
        return await hub.engine.all_clear(alert_id, actor)

    @api.post("/alerts/{alert_id}/cancel", response_model=AlertOut)
    async def cancel_alert(alert_id: str, actor: Actor = OPERATOR) -> AlertOut:
        return await hub.engine.cancel(alert_id, actor)

    @api.get("/gateways", response_model=list[GatewayOut], dependencies=VIEWER)
    async def gateways() -> list[GatewayOut]:
        return [gateway_out(hub, gw) for gw in sorted(hub.registry.gateways)]

    @api.get("/devices", response_model=list[DeviceOut], dependencies=VIEWER)
    async def devices(zone: str | None = None) -> list[DeviceOut]:
        if zone is not None:
            hub.zones.get(zone)  # UnknownZone -> 400
        out = [d for gw in sorted(hub.registry.gateways) for d in devices_out(hub, gw)]
        return [d for d in out if zone is None or zone in d.zones]

    @api.post("/nodes", response_model=NodeOut, dependencies=[Depends(require(Role.technician))])
    async def register_node(req: NodeRegistration) -> NodeOut:
        """Register or update a field node (from `dozor firmware flash --hub` after a good flash)."""
        return hub.nodes.register(req)

    @api.get("/nodes", response_model=list[NodeOut], dependencies=VIEWER)
    async def nodes(outdated: bool | None = None) -> list[NodeOut]:
        """Field nodes: registered and reported by gateways; ``?outdated=true`` only those below the current
        firmware version."""
        return hub.nodes.list(outdated=outdated)

    @api.get("/zones", response_model=list[ZoneOut], dependencies=VIEWER)
    async def zones() -> list[ZoneOut]:
        result = []
        for zone in hub.zones:
            state = hub.engine.zone_states.get(zone.id)
            count = sum(len(d) for d in hub.zones.resolve([zone.id], hub.registry.devices_of).values())
            result.append(ZoneOut(id=zone.id, name=zone.name, gateways=list(zone.gateways),
                                  devices=list(zone.devices),
                                  polygon=zone.polygon.model_dump() if zone.polygon else None,
                                  status=state.status.value if state else "idle",
                                  alert=state.alert if state else None, version=state.version if state else 0,
                                  alerting_devices=count))
        return result

    @api.get("/telemetry/latest", response_model=list[LatestOut], dependencies=VIEWER)
    async def telemetry_latest(gateway: str | None = None, zone: str | None = None) -> list[LatestOut]:
        """The newest value of every metric per device (what was written to the store)."""
        if zone is not None:
            hub.zones.get(zone)
        now = time.time()
        return [LatestOut(gateway=d.gateway, device=d.device, kind=d.kind, zone=d.zone,
                          metrics={k: MetricOut(value=r.metrics[k], ts=r.ts, age_s=round(now - r.ts, 3),
                                                flags=list(r.flags)) for k, r in sorted(d.metrics.items())})
                for d in hub.latest.latest(gateway=gateway, zone=zone)]

    @api.get("/telemetry/tail", response_model=TailOut, dependencies=VIEWER)
    async def telemetry_tail(gateway: str | None = None, after: int | None = Query(None, ge=0),
                             last: int = Query(0, ge=0, le=10_000), wait_s: float = Query(0.0, ge=0, le=30),
                             limit: int = Query(1000, ge=1, le=10_000)) -> TailOut:
        """Readings with a cursor greater than ``after``; without ``after``, the last ``last`` readings.
        ``wait_s`` long-polls: the answer comes as soon as there is something (or when the wait ends)."""
        cache = hub.latest
        start = cache.last(last, gateway=gateway) if after is None else after
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            items, cursor, missed = cache.since(start, gateway=gateway, limit=limit)
            remaining = deadline - loop.time()
            if items or remaining <= 0:
                break
            start = cursor
            await cache.wait(cursor, remaining)
        return TailOut(cursor=cursor, missed=missed, readings=[
            TailReadingOut(cursor=i.cursor, gateway=i.gateway, zone=i.zone, device=i.reading.device,
                           kind=str(getattr(i.reading.kind, "value", i.reading.kind)), ts=i.reading.ts,
                           metrics=dict(i.reading.metrics), flags=list(i.reading.flags)) for i in items])

    @api.get("/air", response_model=AirOut, dependencies=VIEWER)
    async def air(zone: str | None = None) -> AirOut:
        """Latest PM readings with the indicative index of each configured table, per device and zone."""
        if zone is not None:
            hub.zones.get(zone)
        tables = list(hub.pipeline.aqi_tables)
        rows = [air_row(d, tables) for d in hub.latest.air(zone=zone)]
        zones: dict[str, list[AirRowOut]] = {}
        for row in rows:
            if row.zone:
                zones.setdefault(row.zone, []).append(row)
        summary = [AirZoneOut(zone=z, devices=len(rs), aqi={
            t: max((r.aqi[t] for r in rs if t in r.aqi), key=lambda i: (i.value, i.beyond))
            for t in tables if any(t in r.aqi for r in rs)}) for z, rs in sorted(zones.items())]
        return AirOut(tables=tables, rows=rows, zones=summary)

    api.include_router(noise_router(hub), prefix="/noise")
    app.include_router(api)
    for router in routers:
        app.include_router(router)
    check_routes(app, PUBLIC_PATHS)
    return app


def air_row(d: DeviceLatest, tables: list[str]) -> AirRowOut:
    pm = {m: d.metrics[m] for m in PM_METRICS if m in d.metrics}
    newest = max(v.ts for v in pm.values())
    flags = sorted({f for v in pm.values() for f in v.flags})
    aqi = {}
    for name in tables:
        try:
            r = overall(name, {m: d.value(m) for m in pm})
        except AqiError:
            continue
        aqi[name] = IndexOut(table=r.table, value=r.value, category=r.category, pollutant=r.pollutant,
                             beyond=r.beyond)
    return AirRowOut(zone=d.zone, gateway=d.gateway, device=d.device, kind=d.kind,
                     pm2_5=d.value("pm2_5") if "pm2_5" in pm else None,
                     pm10=d.value("pm10") if "pm10" in pm else None, ts=newest,
                     age_s=round(time.time() - newest, 3), high_humidity="high_humidity" in flags, flags=flags, aqi=aqi)


def devices_out(hub: Hub, gateway: str) -> list[DeviceOut]:
    rec = hub.registry.gateways[gateway]
    ids = list(dict.fromkeys([*rec.devices, *rec.status]))
    out = []
    for dev in ids:
        status = rec.status.get(dev)
        info = rec.devices.get(dev)
        out.append(DeviceOut(gateway=gateway, id=dev, kind=info.kind.value if info else None,
                             state=status.state.value if status else "unknown",
                             faults=list(status.faults) if status else [], gateway_state=rec.state,
                             zones=hub.zones.zones_of_device(gateway, dev), fw=info.fw if info else None,
                             detail=status.detail if status else None))
    return out


def gateway_out(hub: Hub, gateway: str) -> GatewayOut:
    rec = hub.registry.gateways[gateway]
    age = None if rec.last_seen_mono is None or rec.last_heartbeat is None else round(
        time.time() - rec.last_heartbeat, 3)
    return GatewayOut(id=rec.id, state=rec.state, reason=rec.reason, session=rec.session, sw=rec.sw, zone=rec.zone,
                      heartbeat_s=rec.heartbeat_s, last_heartbeat_age_s=age, since=rec.since, keys=list(rec.keys),
                      devices=devices_out(hub, gateway),
                      outbox=rec.outbox.model_dump() if rec.outbox else None,
                      trusts_active_key=hub.keys.kid in rec.keys,
                      unverified=hub.gwtrust.verifier.unverified_of(gateway))
