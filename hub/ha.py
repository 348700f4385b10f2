"""Every hub instance serves (issue 14 §2): a hub that does not hold the leader lease is a *follower*.

With ``[database]`` on PostgreSQL, any number of hubs run against one database and one broker. The lease holder
(``hub.leader``) is the alert leader: it runs the alert engine, signs and sends commands, tracks acks and retries,
and writes the hub state. Every other instance serves, from the shared database:

- the API's reads: alerts (``GET /api/v1/alerts``, ``/alerts/{id}``, ``/alerts/pending``, ``/alerts/{id}/log``),
  gateways, devices, zones, nodes, the audit chain; an alert is read from the database on each request, the
  gateway registry, zone states and open alerts are re-read every ``[hub] follower_refresh_s``;
- the resident page, its live stream and the CAP feed (the zone states it re-reads go to the page's state and
  the live stream, without notifying any resident channel: only the leader sends push and webhooks);
- telemetry ingest, when ``[mqtt] share_group`` names an MQTT shared subscription group (``hub.app``).

Alert requests go through the leader: ``LeaderProxy`` forwards every state-changing request under
``/api/v1/alerts`` (and the confirm preview, which reads the leader's overlap view) to the API URL the leader
advertises in its lease holder name, with the caller's own ``Authorization`` header, so the leader authenticates,
authorizes and audits the real caller. No leader reachable (a takeover in progress): 503 ``no_leader``.

When the leader dies, a follower takes the lease (``Leadership.take``), stops mirroring, reads the open alerts and
resumes them: its API never stopped serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import ssl
from typing import TYPE_CHECKING

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from contract.models import ZoneState
from hub.api import error_response
from hub.errors import ConfigError, StoreError
from hub.identity.auth import RequestError, client_address

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger(__name__)
FORWARDED = "x-dozor-forwarded-by"
PASS_HEADERS = ("authorization", "content-type", "accept", "user-agent")
URL_MARK = " api="  # holder names look like "host:pid api=http://10.0.0.2:8080"


def holder_name(api_url: str) -> str:
    import os
    return f"{socket.gethostname()}:{os.getpid()}{URL_MARK}{api_url}"


def url_of(holder: str) -> str | None:
    """The API URL a lease holder advertises (None for a holder name without one, e.g. an older hub)."""
    return holder.split(URL_MARK, 1)[1] if URL_MARK in holder else None


def instance_id(state_dir: object) -> str:
    """A short id of this instance, stable across restarts (its host and state dir): the ingest client id."""
    return hashlib.sha256(f"{socket.gethostname()}|{state_dir}".encode()).hexdigest()[:8]


def forwarded(method: str, path: str) -> bool:
    """Requests only the leader may answer: alert actions, and the preview a confirmer acts on."""
    if not path.startswith("/api/v1/alerts"):
        return False
    return method not in ("GET", "HEAD") or path.endswith("/preview")


FOLLOWER_DUTY = 0.1  # a follower spends at most about this share of its time re-reading the shared state
FOLLOWER_MAX_WAIT_S = 5.0  # ... but its mirror is never older than this plus one re-read


def next_wait(refresh_s: float, took_s: float) -> float:
    """The wait before the next re-read: ``refresh_s``, or longer when a re-read is costly (a city of 2,000
    gateways with open 10,000-siren alerts), so re-reading takes at most ``FOLLOWER_DUTY`` of the follower's time
    (it shares the machine with the leader's dispatch) and the mirror is at most ``FOLLOWER_MAX_WAIT_S`` old."""
    return max(refresh_s, min(FOLLOWER_MAX_WAIT_S, took_s * (1 - FOLLOWER_DUTY) / FOLLOWER_DUTY))


class Follower:
    """The mirror of a follower: re-reads what the leader wrote, every ``refresh_s`` (longer if that is costly:
    ``next_wait``)."""

    def __init__(self, hub: Hub, refresh_s: float) -> None:
        self.hub = hub
        self.refresh_s = refresh_s
        self.following = True
        self.refreshes = 0
        self._versions: dict[str, int] = {}

    def _read(self) -> tuple[list[dict], dict[str, dict], list[dict]]:
        store = self.hub.store
        return store.load_gateways(), store.load_zone_states(), store.load_alerts(open_only=True)

    async def refresh(self) -> None:
        from hub.alerts.model import Alert  # the engine's own row format

        gateways, zone_docs, open_docs = await asyncio.to_thread(self._read)
        if not self.following:
            return  # took over while reading: the engine's memory is the truth now
        self.hub.registry.mirror(gateways)
        engine = self.hub.engine
        engine._open = {}
        for doc in open_docs:
            try:
                alert = Alert.from_docs(doc, ())
            except (KeyError, TypeError, ValueError):
                self.hub.metrics.store_errors.inc()
                continue
            if not alert.finished:
                engine._open[alert.id] = alert
        changed: dict[str, list[ZoneState]] = {}
        for zone, doc in zone_docs.items():
            state = ZoneState.model_validate(doc)
            engine.zone_states[zone] = state
            if self._versions.get(zone, -1) < state.version:
                self._versions[zone] = state.version
                changed.setdefault(state.alert or "", []).append(state)
        for alert_id, states in changed.items():
            if not alert_id:
                continue
            try:
                alert_out = engine.get(alert_id, devices=False)
            except Exception:  # noqa: BLE001 - an alert row we cannot read must not stop the mirror
                self.hub.metrics.store_errors.inc()
                log.exception("follower: cannot read alert %s for the resident page", alert_id)
                continue
            await self.hub.residents.notifier.on_alert(alert_out.model_dump(mode="json"), states, notify=False)
        self.refreshes += 1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            took = 0.0
            if self.following:
                started = loop.time()
                try:
                    await self.refresh()
                except StoreError as exc:
                    self.hub.metrics.store_errors.inc()
                    log.error("follower: cannot read the shared state database: %s", exc)
                took = loop.time() - started
            await asyncio.sleep(next_wait(self.refresh_s, took))

    def stop(self) -> None:
        """This instance leads now: forget the mirror (the engine resumes from the database)."""
        self.following = False
        self.hub.engine._open = {}
        self.hub.registry.reload()


class LeaderProxy:
    """ASGI wrapper: on a follower, alert actions go to the leader with the caller's credentials."""

    def __init__(self, app: ASGIApp, hub: Hub, *, timeout_s: float = 30.0) -> None:
        self.app = app
        self.hub = hub
        self.timeout_s = timeout_s
        self.client: httpx.AsyncClient | None = None
        # an https leader is verified: against [hub] peer_ca_file, else the system's CAs (never skipped)
        ca = hub.config.hub.peer_ca_file
        try:
            self.verify: ssl.SSLContext | bool = True if ca is None else ssl.create_default_context(cafile=str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"[hub] peer_ca_file {ca}: not a readable PEM CA bundle ({exc})") from None

    def _following(self) -> bool:
        follower = getattr(self.hub, "follower", None)
        return follower is not None and follower.following

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._following() or not forwarded(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        response = await self._forward(Request(scope, receive))
        await response(scope, receive, send)

    async def _forward(self, request: Request) -> Response:
        leadership = self.hub.leader
        assert leadership is not None
        if request.headers.get(FORWARDED):  # a leader that lost its lease mid-request: never forward in a loop
            return _no_leader("the hub this request was forwarded to no longer leads")
        try:
            current = await asyncio.to_thread(leadership.lease.current)
        except StoreError as exc:
            return _no_leader(f"cannot read the leader lease: {exc}")
        url = url_of(current["holder"]) if current and current["expires_in_s"] > 0 else None
        if url is None or current["holder"] == leadership.holder:
            return _no_leader("no hub leads right now")
        refused = await self._authenticate(request)
        if refused is not None:
            return refused
        headers = {k: v for k, v in request.headers.items() if k in PASS_HEADERS}
        headers[FORWARDED] = leadership.holder
        headers["x-forwarded-for"] = client_address(request)  # believed by a leader that lists us as a proxy
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=self.timeout_s, verify=self.verify)
        target = url + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            resp = await self.client.request(request.method, target, headers=headers, content=await request.body())
        except httpx.HTTPError as exc:
            self.hub.metrics.publish_errors.labels("forward").inc()
            # a refused connection never carried the request: safe to send again. A timeout after sending may
            # have reached the leader, so the caller must look before it repeats an alert action
            return _no_leader(f"the leader at {url} did not answer ({type(exc).__name__})",
                              reached=not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)))
        self.hub.metrics.alert_ops.labels("forwarded").inc()
        keep = {k: v for k, v in resp.headers.items() if k in ("content-type", "retry-after")}
        return Response(resp.content, status_code=resp.status_code, headers=keep)

    async def _authenticate(self, request: Request) -> Response | None:
        """A bad or missing token stops here, counted against the real client by this hub's own limiter: at the
        leader every forwarded request comes from this hub's address, and strangers' failed logins there would
        lock every operator who goes through this hub out. The leader authenticates (and authorizes) again."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            await self.hub.identity.authenticate(token if scheme.lower() == "bearer" else None,
                                                 client_address(request))
        except RequestError as exc:
            return error_response(exc, self.hub.metrics)
        return None

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def _no_leader(detail: str, *, reached: bool = False) -> Response:
    """503 while no hub leads. ``reached_leader`` false: the request was executed nowhere, so a client may send it
    again (``dozor`` does, for up to its --leader-wait)."""
    return JSONResponse({"error": "no_leader", "reached_leader": reached,
                         "detail": f"{detail}; a takeover takes up to [hub] leader_lease_s, retry"},
                        status_code=503, headers={"retry-after": "1"})
