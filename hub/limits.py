"""ASGI guard in front of the hub's API: per-address limits on the public endpoints, and the 413 counter.

* **Public endpoints.** The resident subscribe API and live stream are open to anyone: each client address
  gets ``public_requests_per_min`` of them per minute, then 429 with ``Retry-After``
  (``dozor_hub_api_rate_limited_total{what="subscribe"|"live"}``).
* **Body size.** The cap itself is FastAPI's ``max_body_size`` (hub/api.py): a declared ``Content-Length`` over
  it is refused before a byte is read and a streamed body is cut at the cap. This guard only counts the 413s
  (``dozor_hub_api_body_too_large_total``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

from hub.identity.auth import WindowLimiter

PUBLIC_LIMITED = (
    ("subscribe", re.compile(r"^/api/v1/push/subscriptions/?$")),
    ("live", re.compile(r"^/api/v1/zones/[^/]+/events/?$")),
)


class Guard:
    def __init__(self, app, *, public: WindowLimiter, on_too_large: Callable[[], None] = lambda: None,
                 on_limited: Callable[[str], None] = lambda _what: None) -> None:
        self.app, self.public = app, public
        self.on_too_large, self.on_limited = on_too_large, on_limited

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        for what, pattern in PUBLIC_LIMITED:
            if pattern.match(path):
                client = (scope.get("client") or ("unknown", 0))[0]
                wait = self.public.take(f"{what}:{client}")
                if wait is not None:
                    self.on_limited(what)
                    body = json.dumps({"error": "rate_limited", "detail": f"too many {what} requests from "
                                       f"{client}: try again in {wait:.0f} s"}).encode()
                    await send({"type": "http.response.start", "status": 429, "headers": [
                        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"retry-after", str(max(1, math.ceil(wait))).encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return None
                break

        async def counting_send(message) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 413:
                self.on_too_large()
            await send(message)

        return await self.app(scope, receive, counting_send)
