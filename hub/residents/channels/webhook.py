"""HMAC-signed webhook for integrators.

Signature: ``X-Dozor-Signature: sha256=<hex HMAC-SHA256(secret, "<X-Dozor-Timestamp>." + body)>``.
An endpoint receives exercises only when it opted in (``exercise=True``); every body states its mode.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from contract.models import ZoneState
from hub.residents.channels.base import Channel, http_error, status_error
from hub.residents.models import ResidentAlert


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, *, tolerance_s: float = 300,
           now: float | None = None) -> bool:
    """What an integrator runs: constant-time compare and a bounded timestamp against replays."""
    try:
        ts = float(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(frozen=True)
class WebhookEndpoint:
    url: str
    secret: bytes
    zones: frozenset[str] | None = None  # None: every zone
    exercise: bool = False  # opted in to exercises


class WebhookChannel(Channel):
    name = "webhook"

    def __init__(self, endpoints: Sequence[WebhookEndpoint], *,
                 transport: httpx.AsyncBaseTransport | None = None, **kw: float) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.endpoints = list(endpoints)
        self._client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(self.timeout_s))

    @staticmethod
    def body(alert: ResidentAlert, states: Sequence[ZoneState]) -> bytes:
        doc = {"event": "zone-state", "alert": alert.model_dump(mode="json", by_alias=True),
               "states": [s.model_dump(mode="json") for s in states]}
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

    async def deliver(self, alert: ResidentAlert, states: Sequence[ZoneState]) -> None:
        jobs = []
        for ep in self.endpoints:
            mine = [s for s in states if ep.zones is None or s.zone in ep.zones]
            if not mine:
                continue
            if alert.exercise and not ep.exercise:
                self.note_skipped_exercise()
                continue
            jobs.append(self._one(ep, alert, mine))
        await asyncio.gather(*jobs)

    async def _one(self, ep: WebhookEndpoint, alert: ResidentAlert, states: Sequence[ZoneState]) -> None:
        body = self.body(alert, states)
        delivery = str(uuid.uuid4())

        async def post() -> None:
            ts = str(int(time.time()))
            headers = {"Content-Type": "application/json", "User-Agent": "dozor-hub",
                       "X-Dozor-Event": alert.msg_type.value, "X-Dozor-Mode": alert.mode.value,
                       "X-Dozor-Delivery": delivery, "X-Dozor-Timestamp": ts,
                       "X-Dozor-Signature": sign(ep.secret, ts, body)}
            try:
                resp = await self._client.post(ep.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise http_error(self.name, exc) from None
            if not 200 <= resp.status_code < 300:
                raise status_error(self.name, resp)

        await self.attempt(post)

    async def aclose(self) -> None:
        await self._client.aclose()
