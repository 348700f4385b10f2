"""The hub's anchoring task: every ``audit_anchor_interval_s`` (and at shutdown) it signs the chain head when
the chain grew, stores the anchor, publishes it retained on ``dozor/v1/hub/audit/head`` and sets
``dozor_hub_audit_head_seq``. Failures are counted and logged once per streak, and the next tick retries."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from contract import topics
from hub.audit.anchor import Anchor, anchor_head, load_anchors
from hub.audit.chain import AuditLog
from hub.audit.retention import prune
from hub.errors import StoreError
from hub.keys import HubKeys
from hub.metrics import HubMetrics

log = logging.getLogger(__name__)


def record_signing_key(audit: AuditLog, keys: HubKeys) -> None:
    """A ``key.activate`` record when the hub signs with a key the chain has not seen active (first start, a
    new or restored key file): key changes are audited like operator actions."""
    last = audit.last("key.activate")
    if last is None or last.details.get("kid") != keys.kid:
        audit.append(None, "key.activate", keys.kid, {"kid": keys.kid, "public_key": keys.public_b64,
                                                      "previous": last.details.get("kid") if last else None,
                                                      "verify_also": list(keys.extra)})


class Anchorer:
    def __init__(self, audit: AuditLog, keys: HubKeys, publish: Callable[..., Awaitable[bool]],
                 metrics: HubMetrics, interval_s: float, *, topic: str = topics.HUB_AUDIT_HEAD) -> None:
        self.topic = topic  # the tenant's retained audit head (contract/topics.py)
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
            if await self.publish(self.topic, payload, qos=1, retain=True):
                self.published_seq = self.last.seq
        return self.last

    async def safe_tick(self) -> None:
        """``tick`` that never raises: a failure is counted, logged once per streak, and retried next time."""
        try:
            await self.tick()
            self.failures = 0
        except Exception:  # noqa: BLE001 - supervised: counted, logged once per streak, retried next tick
            self.failures += 1
            self.metrics.store_errors.inc()
            if self.failures == 1:
                log.exception("cannot anchor the audit chain (retrying every %.0f s)", self.interval_s)

    async def on_connect(self) -> None:
        """The MQTT connection is (back): publish the signed head again at once."""
        self.published_seq = -1
        await self.safe_tick()

    async def run(self) -> None:
        while True:
            await self.safe_tick()
            await asyncio.sleep(self.interval_s)


async def retain(audit: AuditLog, keys: Callable[[], HubKeys], *, days: float, archive_dir: Path,
                 every_s: float = 3600.0) -> None:
    """Every ``every_s``: archive and prune (signing with ``keys()``, the hub's current key) the records older than
    ``days`` (hub/audit/retention.py). A failure
    (disk, database) is logged and retried at the next round; the records stay in the database meanwhile."""
    while True:
        try:
            # on the loop, like every other use of the audit connection (one SQLite connection, no mutex); an
            # hourly prune moves about an hour of records
            done = prune(audit, keys().private, before_ts=time.time() - days * 86400, archive_dir=archive_dir)
        except (StoreError, OSError) as exc:
            log.error("cannot prune the audit chain (records stay in the database; next try in %.0f s): %s",
                      every_s, exc)
        else:
            if done is not None:
                log.warning("audit chain: records %d..%d (%d) older than %g days archived to %s and pruned",
                            done.first_seq, done.through_seq, done.records, days, done.archive)
        await asyncio.sleep(every_s)
