"""A protocol-level fake of the few Grafana HTTP API endpoints `dozor grafana push` uses, on a loopback port.

It keeps state like Grafana does (datasources by uid, folders, dashboards by uid with versions), checks the
bearer token on every /api call except /api/health, validates request bodies the way Grafana would refuse
them, and records every request (method, path, Authorization header, JSON body) for exact assertions.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simulators.brokers import free_port


class FakeGrafana:
    version = "11.3.0"

    def __init__(self, token: str) -> None:
        self.token = token
        self.port = free_port()
        self.requests: list[dict[str, Any]] = []
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.fail_dashboards: tuple[int, dict[str, Any]] | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeGrafana:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls(self) -> list[tuple[str, str]]:
        return [(r["method"], r["path"]) for r in self.requests]

    # ---- the API ----------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, auth: str | None, body: Any) -> tuple[int, Any]:
        if path == "/api/health" and method == "GET":
            return 200, {"commit": "fake", "database": "ok", "version": self.version}
        if auth != f"Bearer {self.token}":
            return 401, {"message": "invalid API key", "traceID": ""}
        if path.startswith("/api/datasources/uid/"):
            uid = path.rsplit("/", 1)[1]
            if method == "GET":
                return (200, self.datasources[uid]) if uid in self.datasources else (
                    404, {"message": "Data source not found"})
            if method == "PUT":
                if uid not in self.datasources:
                    return 404, {"message": "Data source not found"}
                if missing := _missing(body, "name", "type", "access", "url"):
                    return 400, {"message": f"bad request data: missing {missing}"}
                self.datasources[uid] = {**body, "id": self.datasources[uid]["id"]}
                return 200, {"message": "Datasource updated", "id": self.datasources[uid]["id"], "name": body["name"]}
        if path == "/api/datasources" and method == "POST":
            if missing := _missing(body, "name", "type", "access", "url"):
                return 400, {"message": f"bad request data: missing {missing}"}
            if any(d["name"] == body["name"] for d in self.datasources.values()):
                return 409, {"message": "data source with the same name already exists"}
            uid = body.get("uid") or f"ds{len(self.datasources) + 1}"
            self.datasources[uid] = {**body, "id": len(self.datasources) + 1}
            return 200, {"message": "Datasource added", "id": self.datasources[uid]["id"], "name": body["name"]}
        if path.startswith("/api/folders/") and method == "GET":
            uid = path.rsplit("/", 1)[1]
            return (200, self.folders[uid]) if uid in self.folders else (404, {"message": "folder not found"})
        if path == "/api/folders" and method == "POST":
            if missing := _missing(body, "title"):
                return 400, {"message": f"bad request data: missing {missing}"}
            self.folders[body["uid"]] = {"id": len(self.folders) + 1, "uid": body["uid"], "title": body["title"]}
            return 200, self.folders[body["uid"]]
        if path == "/api/dashboards/db" and method == "POST":
            if self.fail_dashboards is not None:
                return self.fail_dashboards
            dash = (body or {}).get("dashboard") or {}
            if missing := _missing(dash, "uid", "title"):
                return 400, {"message": f"Dashboard {missing} required", "status": "bad-request"}
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found", "status": "not-found"}
            old = self.dashboards.get(dash["uid"])
            if old is not None and not body.get("overwrite"):
                return 412, {"message": "A dashboard with the same uid already exists", "status": "name-exists"}
            version = (old["version"] + 1) if old else 1
            self.dashboards[dash["uid"]] = {"dashboard": dash, "folderUid": body["folderUid"], "version": version}
            return 200, {"id": len(self.dashboards), "uid": dash["uid"], "status": "success", "version": version,
                         "url": f"/d/{dash['uid']}/{dash['uid']}"}
        return 404, {"message": "Not found"}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    status, doc = 400, {"message": "bad request data"}
                    body = raw.decode(errors="replace")
                else:
                    status, doc = fake.handle(self.command, self.path, self.headers.get("Authorization"), body)
                fake.requests.append({"method": self.command, "path": self.path,
                                      "auth": self.headers.get("Authorization"), "body": body})
                out = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _missing(body: Any, *keys: str) -> str:
    if not isinstance(body, dict):
        return "body"
    return ", ".join(k for k in keys if not body.get(k))
