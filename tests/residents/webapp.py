"""A small FastAPI app mounting the residents router, as the hub would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI

from hub.residents import ResidentNotifier
from hub.residents.channels import SubscriptionStore, VapidSigner
from hub.residents.web import create_router

TOKEN = "op-token-123"


def make_app(zones, shelters, notifier: ResidentNotifier | None = None, **kw: Any):
    notifier = notifier or ResidentNotifier()
    subs = SubscriptionStore()
    signer = VapidSigner.generate("mailto:ops@dozor.example")
    app = FastAPI()
    app.include_router(create_router(notifier=notifier, zones=zones, shelters=shelters, subscriptions=subs,
                                     vapid_public_key=signer.public_key_b64, token=TOKEN, sender="dozor@kyiv",
                                     public_url="https://alerts.example",
                                     **{"push_hosts": None, "allow_http_push": True, **kw}))
    return app, notifier, subs


async def sse_events(client: httpx.AsyncClient, url: str) -> AsyncIterator[dict[str, Any]]:
    """Parse a real SSE stream: yields {'event', 'id', 'data'} per event."""
    async with client.stream("GET", url) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        ev: dict[str, Any] = {}
        async for line in resp.aiter_lines():
            if line == "":
                if "data" in ev:
                    ev["data"] = json.loads(ev["data"])
                    yield ev
                ev = {}
            elif line.startswith(":"):
                continue
            else:
                k, _, v = line.partition(":")
                ev[k] = v[1:] if v.startswith(" ") else v
