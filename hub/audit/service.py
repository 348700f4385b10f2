"""The hub's anchoring task: every ``audit_anchor_interval_s`` (and at shutdown) it signs the chain head when
the chain grew, stores the anchor, publishes it retained on ``dozor/v1/hub/audit/head`` and sets
``dozor_hub_audit_head_seq``. Failures are counted and logged once per streak, and the next tick retries."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from contract import topics
from hub.audit.anchor import Anchor, anchor_head, load_anchors
from hub.audit.chain import AuditLog
from hub.keys import HubKeys
from hub.metrics import HubMetrics

log = logging.getLogger(__name__)


class Anchorer:
    def __init__(self, audit: AuditLog, keys: HubKeys, publish: Callable[..., Awaitable[bool]],
                 metrics: HubMetrics, interval_s: float) -> None:
        self.audit, self.keys, self.publish, self.metrics, self.interval_s = audit, keys, publish, metrics, interval_s
        self.last: Anchor | None = None
        self.published_seq = -1
        self.failures = 0
        anchors = [a for a in load_anchors(audit) if a.kid == keys.kid]
        if anchors:
            self._show(anchors[-1])

    def _show(self, anchor: Anchor) -> None:
        self.last = anchor
        self.metrics.audit_head_seq.set(anchor.seq)
        self.metrics.audit_head_ts.set(anchor.ts)
        self.metrics.audit_head.clear()
        self.metrics.audit_head.labels(anchor.hash, anchor.kid).set(anchor.seq)

    async def tick(self) -> Anchor | None:
        """Sign the head if the chain grew since the last anchor; (re)publish until the broker took it."""
        seq, _ = self.audit.head()
        if seq and (self.last is None or self.last.seq != seq):
            anchor = anchor_head(self.audit, self.keys.private)
            if anchor is not None:
                self._show(anchor)
        if self.last is not None and self.published_seq != self.last.seq:
            payload = json.dumps(self.last.as_dict(), separators=(",", ":")).encode()
            if await self.publish(topics.HUB_AUDIT_HEAD, payload, qos=1, retain=True):
                self.published_seq = self.last.seq
        return self.last

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
                self.failures = 0
            except Exception:  # noqa: BLE001 - supervised: counted, logged once per streak, retried next tick
                self.failures += 1
                self.metrics.store_errors.inc()
                if self.failures == 1:
                    log.exception("cannot anchor the audit chain (retrying every %.0f s)", self.interval_s)
            await asyncio.sleep(self.interval_s)
