"""/api/v1/noise/...: the violations register over HTTP (mounted under /api/v1). Reading needs ``viewer``;
a review needs ``noise-reviewer`` and records the authenticated user (never a self-declared name) in the
register's trail and the hub's audit chain (``noise.review``).

    GET  /noise/events?since=24h&until=&zone=&min_level=&state=&gateway=&limit=
    GET  /noise/events/{id}                     (with the evidence record, the audit trail and the blockers)
    POST /noise/events/{id}/review              {action: confirm|dismiss, note}
    GET  /noise/report?month=YYYY-MM            (counts by zone/class/state, top sensors)
    GET  /noise/export.csv, /noise/export.geojson   (the same filters as /noise/events)

``min_level`` compares with LAFmax normalised to 7.5 m (the enforcement level). Errors: 400 bad filter or
unknown zone, 404 unknown event, 409 a review that is refused (e.g. confirming a siren-suppressed record).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from hub.identity import Actor, Role, require
from hub.violations.export import parse_time, report, to_csv, to_geojson
from hub.violations.models import NoiseEventDetail, NoiseEventOut, NoiseReport, ReviewRequest, State
from hub.violations.register import Filters

if TYPE_CHECKING:
    from hub.app import Hub


def router(hub: Hub) -> APIRouter:
    r = APIRouter(dependencies=[Depends(require(Role.viewer))])

    def filters(since: str | None = Query(None, max_length=64), until: str | None = Query(None, max_length=64),
                zone: str | None = Query(None, max_length=64), min_level: float | None = Query(None, ge=0, le=200),
                state: State | None = None, gateway: str | None = Query(None, max_length=64),
                limit: int = Query(1000, ge=1, le=100_000)) -> Filters:
        if zone is not None:
            hub.zones.get(zone)  # UnknownZone -> 400
        return Filters(since=parse_time(since, "since"), until=parse_time(until, "until"), zone=zone,
                       min_level=min_level, state=state, gateway=gateway, limit=limit)

    @r.get("/events", response_model=list[NoiseEventOut])
    async def events(f: Filters = Depends(filters)) -> list[dict]:
        """Stored pass-by events, oldest first."""
        return hub.violations.list(f)

    @r.get("/events/{event_id}", response_model=NoiseEventDetail)
    async def event(event_id: str) -> dict:
        return hub.violations.get(event_id)

    @r.post("/events/{event_id}/review", response_model=NoiseEventDetail)
    async def review(event_id: str, req: ReviewRequest,
                     actor: Actor = Depends(require(Role.noise_reviewer))) -> dict:
        out = hub.violations.review(event_id, req.action, req.note.strip(), actor.name)
        details = {"action": req.action, "note": req.note.strip(), "state": out.get("state")}
        if req.reviewer and req.reviewer.strip() != actor.name:
            details["declared_reviewer"] = req.reviewer.strip()
        hub.audit.append(actor, "noise.review", event_id, details)
        return out

    @r.get("/report", response_model=NoiseReport)
    async def monthly(month: str = Query(..., max_length=16)) -> dict:
        return report(hub.violations.register, month)

    @r.get("/export.csv")
    async def export_csv(f: Filters = Depends(filters)) -> Response:
        return Response(to_csv(hub.violations.list(f)), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="noise-events.csv"'})

    @r.get("/export.geojson")
    async def export_geojson(f: Filters = Depends(filters)) -> JSONResponse:
        return JSONResponse(to_geojson(hub.violations.list(f)), media_type="application/geo+json")

    return r
