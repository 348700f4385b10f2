"""Protocol-level fakes of the boundaries that cannot exist here, served over real HTTP on 127.0.0.1.

- PushService: a Web Push service that checks VAPID (ES256 JWT verified with the key in the header),
  enforces 4096 bytes, and decrypts the aes128gcm body with the subscription's private key (http_ece).
- NtfyServer, TelegramApi, WebhookReceiver: record the exact request fields.
Each can be told to answer with a status, or to hang (never answer) for a path.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

LOG: list[tuple[float, str]] = []  # (loop time, what) shared ordering log across receivers


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64u_dec(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@dataclass
class Browser:
    """The browser side of one push subscription: a P-256 key pair and a 16-byte auth secret."""

    endpoint: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self) -> dict[str, Any]:
        pub = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64u(pub), "auth": b64u(self.auth)}}


class _Base:
    def __init__(self, name: str) -> None:
        self.name = name
        self.received: list[dict[str, Any]] = []
        self.status: dict[str, int] = {}  # path key -> status to answer
        self.hang: set[str] = set()
        self.pending = 0
        self.arrived = asyncio.Event()
        self._release = asyncio.Event()

    def release(self) -> None:
        self._release.set()

    async def _maybe_hang(self, key: str) -> None:
        if key in self.hang:
            self.pending += 1
            LOG.append((time.monotonic(), f"{self.name}:hang:{key}"))
            try:
                await self._release.wait()
            finally:
                self.pending -= 1

    def _record(self, item: dict[str, Any]) -> None:
        self.received.append(item)
        LOG.append((time.monotonic(), f"{self.name}:recv:{item.get('key')}"))
        self.arrived.set()

    async def wait_for(self, n: int, limit_s: float = 10.0) -> None:
        async with asyncio.timeout(limit_s):
            while len(self.received) < n:
                self.arrived.clear()
                await self.arrived.wait()


class PushService(_Base):
    def __init__(self) -> None:
        super().__init__("push")
        self.browsers: dict[str, Browser] = {}
        self.base = ""
        self.app = Starlette(routes=[Route("/push/{sid}", self.handle, methods=["POST"])])

    def browser(self, sid: str) -> Browser:
        b = Browser(endpoint=f"{self.base}/push/{sid}")
        self.browsers[sid] = b
        return b

    async def handle(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        await self._maybe_hang(sid)
        if sid in self.status:
            return Response(status_code=self.status[sid])
        body = await request.body()
        if len(body) > 4096:
            return Response(status_code=413)
        if request.headers.get("content-encoding") != "aes128gcm":
            return Response("bad encoding", status_code=400)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("vapid t="):
            return Response("no vapid", status_code=401)
        token, _, k = auth[len("vapid t="):].partition(",k=")
        vkey = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64u_dec(k))
        origin = str(request.base_url).rstrip("/")
        try:
            claims = jwt.decode(token, vkey, algorithms=["ES256"], audience=origin)
        except jwt.PyJWTError as exc:
            return Response(f"vapid: {exc}", status_code=403)
        b = self.browsers.get(sid)
        if b is None:
            return Response(status_code=404)
        plain = http_ece.decrypt(body, private_key=b.key, auth_secret=b.auth, version="aes128gcm")
        self._record({"key": sid, "headers": dict(request.headers), "claims": claims,
                      "vapid_k": k, "payload": json.loads(plain), "size": len(body)})
        return Response(status_code=201, headers={"Location": f"/msg/{len(self.received)}"})


class NtfyServer(_Base):
    def __init__(self) -> None:
        super().__init__("ntfy")
        self.app = Starlette(routes=[Route("/", self.publish, methods=["POST", "PUT"])])

    async def publish(self, request: Request) -> Response:
        raw = await request.body()
        try:
            msg = json.loads(raw)
        except ValueError:
            return JSONResponse({"code": 40001, "http": 400, "error": "invalid request: bad JSON"}, status_code=400)
        topic = msg.get("topic", "")
        await self._maybe_hang(topic)
        if topic in self.status:
            return JSONResponse({"error": "forced"}, status_code=self.status[topic])
        if len(raw) > 4096:
            return JSONResponse({"error": "too large"}, status_code=413)
        self._record({"key": topic, "json": msg, "headers": dict(request.headers)})
        return JSONResponse({"id": f"m{len(self.received)}", "time": int(time.time()), "event": "message",
                             "topic": topic, "message": msg.get("message", "")})


class TelegramApi(_Base):
    def __init__(self, token: str) -> None:
        super().__init__("telegram")
        self.token = token
        self.flood: dict[str, int] = {}  # chat -> how many 429s to answer first
        self.app = Starlette(routes=[Route("/bot{token}/sendMessage", self.send, methods=["POST"])])

    async def send(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401)
        try:
            msg = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"ok": False, "error_code": 400, "description": "Bad Request"}, status_code=400)
        chat = str(msg.get("chat_id"))
        await self._maybe_hang(chat)
        if self.flood.get(chat, 0) > 0:
            self.flood[chat] -= 1
            return JSONResponse({"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 0",
                                 "parameters": {"retry_after": 0}}, status_code=429)
        if not isinstance(msg.get("text"), str) or not msg["text"] or len(msg["text"]) > 4096:
            return JSONResponse({"ok": False, "error_code": 400, "description": "Bad Request: text"},
                                status_code=400)
        self._record({"key": chat, "json": msg})
        return JSONResponse({"ok": True, "result": {"message_id": len(self.received), "chat": {"id": chat},
                                                    "date": int(time.time()), "text": msg["text"]}})


class WebhookReceiver(_Base):
    def __init__(self) -> None:
        super().__init__("webhook")
        self.app = Starlette(routes=[Route("/hook/{name}", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        name = request.path_params["name"]
        await self._maybe_hang(name)
        if name in self.status:
            return Response(status_code=self.status[name])
        self._record({"key": name, "body": await request.body(), "headers": dict(request.headers)})
        return Response(status_code=204)


async def eventually(pred: Any, tries: int = 1000) -> None:
    """Poll a condition (bounded); for facts no receiver event marks, such as a counter update."""
    for _ in range(tries):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")
