"""Upload the datasource and the dashboards to a running Grafana through its HTTP API (httpx).

Endpoints used (a service-account token as ``Authorization: Bearer``):

- ``GET /api/health``: reachable, and which version;
- ``GET /api/datasources/uid/{uid}``, then ``PUT`` the same path (exists) or ``POST /api/datasources`` (404);
- ``GET /api/folders/{uid}``, then ``POST /api/folders`` on 404;
- ``POST /api/dashboards/db`` with ``{"dashboard", "folderUid", "overwrite": true, "message"}`` per dashboard.

Why not grafana-client: it pulls urllib3-future, which overwrites the files of the ``urllib3`` package that
influxdb-client (the hub's v2 writer) runs on, while pip still reports the old urllib3. The few calls above
do not justify that; the HTTP transport stays swappable (tests, proxies) as everywhere else in dozor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from hub.errors import HubError


class GrafanaError(HubError):
    """Grafana could not be reached or refused a request; the message says which and why."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class PushResult:
    grafana_version: str = ""
    datasource: str = ""  # "created" / "updated" / "skipped"
    folder: str = ""  # "created" / "exists"
    dashboards: dict[str, str] = field(default_factory=dict)  # uid -> url path Grafana returned

    def to_dict(self) -> dict[str, Any]:
        return {"grafana_version": self.grafana_version, "datasource": self.datasource, "folder": self.folder,
                "dashboards": self.dashboards}


class GrafanaClient:
    def __init__(self, url: str, token: str | None, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GrafanaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: Any = None, *, ok_404: bool = False) -> httpx.Response:
        try:
            r = self._client.request(method, path, json=body)
        except httpx.ConnectError as exc:
            raise GrafanaError(f"Grafana not reachable at {self.url}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise GrafanaError(f"Grafana at {self.url} did not answer {method} {path} in time") from exc
        except httpx.HTTPError as exc:
            raise GrafanaError(f"talking to Grafana at {self.url}: {type(exc).__name__}: {exc}") from exc
        if r.status_code == 404 and ok_404:
            return r
        if r.status_code in (401, 403):
            raise GrafanaError(f"Grafana refused {method} {path} ({r.status_code}: {_message(r)}): pass a "
                               "service-account token with the Admin role (--token or GRAFANA_TOKEN)",
                               status=r.status_code)
        if r.status_code >= 400:
            raise GrafanaError(f"Grafana {method} {path} failed ({r.status_code}): {_message(r)}",
                               status=r.status_code)
        return r

    def health(self) -> str:
        r = self.request("GET", "/api/health")
        try:
            return str(r.json().get("version", ""))
        except ValueError as exc:
            raise GrafanaError(f"{self.url} does not look like Grafana: /api/health is not JSON") from exc

    def upsert_datasource(self, ds: Mapping[str, Any]) -> str:
        path = f"/api/datasources/uid/{ds['uid']}"
        if self.request("GET", path, ok_404=True).status_code == 404:
            self.request("POST", "/api/datasources", dict(ds))
            return "created"
        self.request("PUT", path, dict(ds))
        return "updated"

    def ensure_folder(self, uid: str, title: str) -> str:
        if self.request("GET", f"/api/folders/{uid}", ok_404=True).status_code == 404:
            self.request("POST", "/api/folders", {"uid": uid, "title": title})
            return "created"
        return "exists"

    def put_dashboard(self, dashboard: Mapping[str, Any], folder_uid: str, message: str) -> str:
        body = {"dashboard": {**dashboard, "id": None}, "folderUid": folder_uid, "overwrite": True,
                "message": message}
        r = self.request("POST", "/api/dashboards/db", body)
        try:
            return str(r.json().get("url", ""))
        except ValueError:
            return ""


def push(client: GrafanaClient, dashboards: Mapping[str, Mapping[str, Any]], *,
         datasource: Mapping[str, Any] | None, folder_uid: str, folder_title: str,
         message: str = "dozor grafana push") -> PushResult:
    result = PushResult(grafana_version=client.health())
    result.datasource = client.upsert_datasource(datasource) if datasource is not None else "skipped"
    result.folder = client.ensure_folder(folder_uid, folder_title)
    for d in dashboards.values():
        result.dashboards[d["uid"]] = client.put_dashboard(d, folder_uid, message)
    return result


def _message(r: httpx.Response) -> str:
    try:
        doc = r.json()
    except ValueError:
        return r.text[:200] or r.reason_phrase
    if isinstance(doc, dict):
        return str(doc.get("message") or doc.get("error") or doc)[:200]
    return str(doc)[:200]
