"""A small typed client for the hub's HTTP API, used by the CLI.

    with HubClient.from_config("examples/hub.toml") as hub:
        alert = hub.create_alert(["podil"], "air-raid", "exercise", duration_s=120)
        print(hub.alert(alert.id).summary)

Every failure is a ``HubClientError`` with a message meant for an operator's terminal.
The transport is swappable (httpx style), so tests can pass ``httpx.ASGITransport`` or a mock transport.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from contract.errors import DozorError
from hub.config import load_config
from hub.models import (
    AirOut,
    AlertDetail,
    AlertOut,
    AlertPreview,
    DeviceOut,
    GatewayOut,
    LatestOut,
    NodeOut,
    NodeRegistration,
    TailOut,
    ZoneOut,
)
from hub.violations.models import NoiseEventDetail, NoiseEventOut, NoiseReport

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8080"


class HubClientError(DozorError):
    """The hub could not be reached or refused the request. ``status``/``code`` when it answered."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        self.status = status
        self.code = code
        super().__init__(message)


def _no_leader_retry_s(r: httpx.Response) -> float | None:
    """Seconds to wait before sending again, for a 503 no_leader that reached no leader; else None."""
    if r.status_code != 503:
        return None
    try:
        body = r.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("error") != "no_leader" or body.get("reached_leader") is not False:
        return None
    try:
        return min(max(float(r.headers.get("retry-after", "1")), 0.1), 5.0)
    except ValueError:
        return 1.0


class HubClient:
    def __init__(self, base_url: str = DEFAULT_URL, token: str | None = None, *,
                 transport: httpx.BaseTransport | None = None, timeout: float = 10.0,
                 leader_wait_s: float = 30.0, on_wait: Callable[[str], None] | None = None) -> None:
        # several hubs of one city (comma-separated): a hub that cannot be reached is skipped for the next one
        # (the request never left, so even an alert action is safe to send again); any of them serves and
        # forwards alert actions to the leader (docs/operations.md "Two hubs, one city")
        self.urls = [u.strip().rstrip("/") for u in base_url.split(",") if u.strip()] or [DEFAULT_URL]
        self.base_url = self.urls[0]
        self.timeout = timeout
        # while a takeover runs, hubs answer 503 no_leader; a request that reached no leader is sent again for up
        # to this long (``on_wait`` hears why, once per request)
        self.leader_wait_s = leader_wait_s
        self.on_wait = on_wait
        self._has_token = bool(token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(headers=headers, timeout=timeout, transport=transport)

    @classmethod
    def from_config(cls, path: str | Path, **kw: Any) -> HubClient:
        """URL of a local hub from its config; the token from DOZOR_TOKEN, else the admin-token that
        `dozor hub init` wrote beside the config, else state_dir/api-token (`dozor demo`)."""
        cfg = load_config(path)
        token = os.environ.get("DOZOR_TOKEN") or os.environ.get("DOZOR_HUB_TOKEN")
        files = [Path(path).resolve().parent / "admin-token", cfg.hub.state_dir / "api-token"]
        for token_file in files if not token else []:
            try:
                token = token_file.read_text().strip()
                break
            except OSError:
                continue
        if not token:
            raise HubClientError(f"no API token: set DOZOR_TOKEN (a user token from `dozor users add ... --config "
                                 f"{path}`)") from None
        host = "127.0.0.1" if cfg.hub.api_host in ("0.0.0.0", "::") else cfg.hub.api_host
        return cls(f"http://{host}:{cfg.hub.api_port}", token, **kw)

    @classmethod
    def from_env(cls, **kw: Any) -> HubClient:
        """DOZOR_HUB_URL (default http://127.0.0.1:8080) and DOZOR_HUB_TOKEN."""
        return cls(os.environ.get("DOZOR_HUB_URL", DEFAULT_URL), os.environ.get("DOZOR_HUB_TOKEN"), **kw)

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ transport and errors
    def _call(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
              timeout: float | None = None) -> Any:
        return self._send(method, path, json=json, params=params, timeout=timeout, want_json=True)

    def _text(self, path: str, *, params: dict | None = None) -> str:
        """GET a non-JSON document (exports); errors as for ``_call``."""
        return self._send("GET", path, params=params, want_json=False)

    def _send(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
              timeout: float | None = None, want_json: bool = True) -> Any:
        deadline = time.monotonic() + self.leader_wait_s
        told = False
        while True:
            r = self._request(method, path, json=json, params=params, timeout=timeout)
            wait = _no_leader_retry_s(r)
            if wait is None or time.monotonic() + wait > deadline:
                return self._answer(r, method, path, want_json)
            if not told and self.on_wait is not None:
                self.on_wait(f"no hub leads right now (a takeover is under way); retrying {method} {path} for up "
                             f"to {self.leader_wait_s:g}s")
                told = True
            time.sleep(wait)
            if len(self.urls) > 1:  # the next hub may be the one that took over
                self.base_url = self.urls[(self.urls.index(self.base_url) + 1) % len(self.urls)]

    def _request(self, method: str, path: str, *, json: Any, params: dict | None,
                 timeout: float | None) -> httpx.Response:
        for left in range(len(self.urls) - 1, -1, -1):
            try:
                r = self._http.request(method, self.base_url + path, json=json, params=params,
                                       timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
                break
            except httpx.ConnectError:
                if not left:
                    raise HubClientError(f"hub not reachable at {', '.join(self.urls)} — is `dozor hub run` up?"
                                         ) from None
                self.base_url = self.urls[(self.urls.index(self.base_url) + 1) % len(self.urls)]
            except httpx.TimeoutException:
                raise HubClientError(f"hub at {self.base_url} did not answer within {self.timeout:g}s") from None
            except httpx.HTTPError as exc:
                raise HubClientError(f"talking to the hub at {self.base_url} failed: {exc}") from None
        return r

    def _answer(self, r: httpx.Response, method: str, path: str, want_json: bool) -> Any:
        if r.status_code == 401 and not self._has_token:
            raise HubClientError(f"no token given, and the hub at {self.base_url} needs one: pass your user token "
                                 "with --token, DOZOR_TOKEN or DOZOR_TOKEN_FILE (`dozor users add NAME --role ROLE` "
                                 "issues one)", status=401, code="unauthorized")
        if r.status_code == 401:
            raise HubClientError(f"token rejected by the hub at {self.base_url} (pass your user token with --token "
                                 "or DOZOR_TOKEN; `dozor users rotate-token NAME` issues a new one)", status=401,
                                 code="unauthorized")
        if r.status_code < 400 and not want_json:
            return r.text
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code >= 400:
            code = body.get("error") if isinstance(body, dict) else None
            detail = body.get("detail") if isinstance(body, dict) else r.text[:200]
            raise HubClientError(f"hub refused {method} {path} ({r.status_code}): {detail}", status=r.status_code,
                                 code=code)
        if body is None:
            raise HubClientError(f"hub answered {method} {path} with something that is not JSON",
                                 status=r.status_code)
        return body

    def _parse(self, shape: type[T] | Any, body: Any) -> T:
        try:
            if isinstance(shape, type) and issubclass(shape, BaseModel):
                return shape.model_validate(body)
            return TypeAdapter(shape).validate_python(body)
        except ValidationError as exc:
            raise HubClientError(f"unexpected answer from the hub at {self.base_url}: {exc.errors()[0]['msg']} "
                                 "(is the CLI the same version as the hub?)") from None

    # ------------------------------------------------------------ API
    def health(self) -> dict[str, Any]:
        return self._call("GET", "/healthz")

    def create_alert(self, zones: list[str], signal: str, mode: str, *, duration_s: int = 180,
                     message: dict[str, str] | None = None, break_glass: bool = False,
                     reason: str | None = None) -> AlertOut:
        """A new alert. Its ``status`` is ``pending_confirmation`` when the hub's two-person rule covers it:
        then nothing is sent until a second person (a supervisor) calls ``confirm``."""
        body: dict[str, Any] = {"zones": zones, "signal": signal, "mode": mode, "duration_s": duration_s}
        if message:
            body["message"] = message
        if break_glass:
            body["break_glass"] = True
        if reason:
            body["reason"] = reason
        return self._parse(AlertOut, self._call("POST", "/api/v1/alerts", json=body))

    def pending(self) -> list[AlertOut]:
        """Alert requests waiting for a second person, oldest first."""
        return self._parse(list[AlertOut], self._call("GET", "/api/v1/alerts/pending"))

    def preview(self, alert_id: str) -> AlertPreview:
        """What confirming ``alert_id`` would do: zones, signal, messages, sirens, residents, alerts it affects."""
        return self._parse(AlertPreview, self._call("GET", f"/api/v1/alerts/{quote(alert_id, safe='')}/preview"))

    def confirm(self, alert_id: str) -> AlertOut:
        """The second person's confirmation: the alert is sent now."""
        return self._parse(AlertOut, self._call("POST", f"/api/v1/alerts/{quote(alert_id, safe='')}/confirm"))

    def audit(self, *, alert: str | None = None, actor: str | None = None, since_seq: int = 0) -> list[dict]:
        """Audit chain records (GET /api/v1/audit), oldest first."""
        params = {k: v for k, v in (("alert", alert), ("actor", actor), ("since_seq", since_seq)) if v}
        return self._call("GET", "/api/v1/audit", params=params)

    def whoami(self) -> dict:
        return self._call("GET", "/api/v1/whoami")

    def alerts(self) -> list[AlertOut]:
        return self._parse(list[AlertOut], self._call("GET", "/api/v1/alerts"))

    def alert(self, alert_id: str, *, devices: bool = True) -> AlertDetail:
        """One alert with its summary; ``devices=False`` omits the per-device list (for live polling)."""
        params = None if devices else {"devices": "false"}
        return self._parse(AlertDetail, self._call("GET", f"/api/v1/alerts/{quote(alert_id, safe='')}", params=params))

    def alert_log(self, alert_id: str) -> list[dict[str, Any]]:
        """The alert's audit log (start, retries, escalations, updates), oldest first."""
        return self._parse(list[dict[str, Any]], self._call("GET", f"/api/v1/alerts/{quote(alert_id, safe='')}/log"))

    def stop(self, alert_id: str) -> AlertOut:
        return self._parse(AlertOut, self._call("POST", f"/api/v1/alerts/{quote(alert_id, safe='')}/stop"))

    def all_clear(self, alert_id: str) -> AlertOut:
        return self._parse(AlertOut, self._call("POST", f"/api/v1/alerts/{quote(alert_id, safe='')}/all-clear"))

    def cancel(self, alert_id: str) -> AlertOut:
        return self._parse(AlertOut, self._call("POST", f"/api/v1/alerts/{quote(alert_id, safe='')}/cancel"))

    def gateways(self) -> list[GatewayOut]:
        return self._parse(list[GatewayOut], self._call("GET", "/api/v1/gateways"))

    def devices(self, zone: str | None = None) -> list[DeviceOut]:
        return self._parse(list[DeviceOut], self._call("GET", "/api/v1/devices",
                                                       params={"zone": zone} if zone else None))

    def register_node(self, reg: NodeRegistration) -> NodeOut:
        """Record a provisioned field node (id, kind, zone, location, key fingerprint, firmware version)."""
        return self._parse(NodeOut, self._call("POST", "/api/v1/nodes", json=reg.model_dump(exclude_none=True)))

    def nodes(self, *, outdated: bool = False) -> list[NodeOut]:
        """Field nodes; ``outdated=True``: only those whose firmware is older than the hub's current version."""
        return self._parse(list[NodeOut], self._call("GET", "/api/v1/nodes",
                                                     params={"outdated": "true"} if outdated else None))

    def zones(self) -> list[ZoneOut]:
        return self._parse(list[ZoneOut], self._call("GET", "/api/v1/zones"))

    def air(self, zone: str | None = None) -> AirOut:
        """Latest PM readings with indicative AQI per table, per device and zone."""
        return self._parse(AirOut, self._call("GET", "/api/v1/air", params={"zone": zone} if zone else None))

    def telemetry_latest(self, gateway: str | None = None, zone: str | None = None) -> list[LatestOut]:
        params = {k: v for k, v in (("gateway", gateway), ("zone", zone)) if v}
        return self._parse(list[LatestOut], self._call("GET", "/api/v1/telemetry/latest", params=params or None))

    def telemetry_tail(self, *, gateway: str | None = None, after: int | None = None, last: int = 0,
                       wait_s: float = 0.0, limit: int = 1000) -> TailOut:
        """Readings after the cursor ``after`` (or the last ``last``); long-polls up to ``wait_s``."""
        params: dict[str, Any] = {"last": last, "wait_s": wait_s, "limit": limit}
        if gateway:
            params["gateway"] = gateway
        if after is not None:
            params["after"] = after
        return self._parse(TailOut, self._call("GET", "/api/v1/telemetry/tail", params=params,
                                               timeout=self.timeout + wait_s))

    # ------------------------------------------------------------ noise violations register
    @staticmethod
    def _noise_params(since: str | None, until: str | None, zone: str | None, min_level: float | None,
                      state: str | None, gateway: str | None, limit: int | None) -> dict[str, Any]:
        pairs = (("since", since), ("until", until), ("zone", zone), ("min_level", min_level), ("state", state),
                 ("gateway", gateway), ("limit", limit))
        return {k: v for k, v in pairs if v is not None}

    def noise_events(self, *, since: str | None = None, until: str | None = None, zone: str | None = None,
                     min_level: float | None = None, state: str | None = None, gateway: str | None = None,
                     limit: int | None = None) -> list[NoiseEventOut]:
        """Pass-by events in the register; ``since``/``until``: ``24h``, epoch seconds or ISO 8601;
        ``min_level``: LAFmax at 7.5 m, dB."""
        params = self._noise_params(since, until, zone, min_level, state, gateway, limit)
        return self._parse(list[NoiseEventOut], self._call("GET", "/api/v1/noise/events", params=params))

    def noise_event(self, event_id: str) -> NoiseEventDetail:
        return self._parse(NoiseEventDetail, self._call("GET", f"/api/v1/noise/events/{quote(event_id, safe='')}"))

    def noise_review(self, event_id: str, action: str, note: str, reviewer: str) -> NoiseEventDetail:
        body = {"action": action, "note": note, "reviewer": reviewer}
        return self._parse(NoiseEventDetail, self._call(
            "POST", f"/api/v1/noise/events/{quote(event_id, safe='')}/review", json=body))

    def noise_report(self, month: str) -> NoiseReport:
        return self._parse(NoiseReport, self._call("GET", "/api/v1/noise/report", params={"month": month}))

    def noise_export(self, fmt: str, *, since: str | None = None, until: str | None = None,
                     zone: str | None = None, min_level: float | None = None, state: str | None = None,
                     gateway: str | None = None, limit: int | None = None) -> str:
        """The register as CSV or GeoJSON text (``fmt``: "csv" | "geojson")."""
        if fmt not in ("csv", "geojson"):
            raise HubClientError(f"unknown export format {fmt!r}: use csv or geojson")
        params = self._noise_params(since, until, zone, min_level, state, gateway, limit)
        return self._text(f"/api/v1/noise/export.{fmt}", params=params)
