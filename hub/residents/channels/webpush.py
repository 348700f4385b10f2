"""Web Push (RFC 8030/8291/8292): VAPID-signed, aes128gcm-encrypted, one Topic per zone.

Encryption is our own RFC 8291 code (``ece.py``; pywebpush's encoder did the same at 4x the CPU), VAPID
uses py_vapid, and requests go through a swappable ``httpx.AsyncBaseTransport`` (default: the lean
``Http1Transport``; httpx's own ``AsyncHTTPTransport`` works too). Encryption is CPU work (one ECDH per
message), so large fan-outs run it in worker processes and never block the event loop the sirens share.
404/410 prune the subscription.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02

from contract.models import ZoneState
from hub.repo import Backend, Database
from hub.repo.schema import PUSH
from hub.residents.channels.base import Channel, http_error, status_error
from hub.residents.channels.ece import encrypt_batch
from hub.residents.channels.fasthttp import Http1Transport
from hub.residents.channels.pushworker import origin_of, post_one, run_job, send_chunk, warm
from hub.residents.errors import ChannelError, ConfigError
from hub.residents.models import ResidentAlert

MAX_BODY = 4096
_TOPIC_RE = re.compile(r"^[A-Za-z0-9_-]{1,27}$")


def topic_for(zone: str) -> str:
    """RFC 8030 Topic: at most 32 base64url characters. Same zone -> same topic -> newer replaces older."""
    if _TOPIC_RE.match(zone):
        return f"zone-{zone}"
    digest = base64.urlsafe_b64encode(hashlib.sha256(zone.encode()).digest()).decode().rstrip("=")
    return f"z-{digest[:30]}"


@dataclass(frozen=True)
class Subscriber:
    endpoint: str
    p256dh: str
    auth: str
    zones: frozenset[str]
    tester: bool = False
    lang: str = "uk"


MAX_SUBSCRIPTIONS = 2_000_000  # ~1 KB each: a bounded table even under a subscription flood
SUBSCRIPTION_MAX_AGE_S = 400 * 86400.0  # browsers re-subscribe (and refresh ``created``) long before this


class SubscriptionStore:
    """Browser subscriptions and their zones, indexed by zone. Persisted when given a SQLite (WAL) path or a
    ``hub.repo`` Database (the ``push`` component: PostgreSQL); memory is the index the fan-out reads.

    Bounded: at most ``max_subscriptions`` (beyond it the least recently (re)subscribed are evicted, counted in
    ``evicted``), and a subscription not renewed for ``max_age_s`` is dropped when the store opens. Endpoints a
    push service reports gone are pruned by the channel."""

    def __init__(self, path: str | Path | Database | None = None, *, max_subscriptions: int = MAX_SUBSCRIPTIONS,
                 max_age_s: float = SUBSCRIPTION_MAX_AGE_S) -> None:
        self._subs: dict[str, Subscriber] = {}
        self._created: dict[str, float] = {}  # insertion-ordered by (re)subscription time
        self._by_zone: dict[str, set[str]] = {}
        self._db: Database | None = None
        self.max_subscriptions = max_subscriptions
        self.evicted = 0
        if path is not None:
            self._db = path if isinstance(path, Database) else \
                Backend.sqlite(Path(path).parent).open(PUSH, path=Path(path))
            self.evicted += self._db.execute("DELETE FROM push_subs WHERE created < ?", (time.time() - max_age_s,))
            for row in self._db.query("SELECT endpoint, p256dh, auth, zones, tester, lang, created FROM push_subs "
                                      "ORDER BY created"):
                self._index(Subscriber(row[0], row[1], row[2], frozenset(json.loads(row[3])), bool(row[4]),
                                       row[5]), row[6] or 0.0)
            self._evict()

    def _index(self, sub: Subscriber, created: float | None = None) -> None:
        self._unindex(sub.endpoint)
        self._subs[sub.endpoint] = sub
        self._created[sub.endpoint] = time.time() if created is None else created
        for zone in sub.zones:
            self._by_zone.setdefault(zone, set()).add(sub.endpoint)

    def _unindex(self, endpoint: str) -> Subscriber | None:
        old = self._subs.pop(endpoint, None)
        self._created.pop(endpoint, None)
        if old is not None:
            for zone in old.zones:
                group = self._by_zone.get(zone)
                if group is not None:
                    group.discard(endpoint)
        return old

    def add(self, sub: Subscriber) -> None:
        self.add_many([sub])

    def add_many(self, subs: Iterable[Subscriber]) -> None:
        subs = list(subs)
        for sub in subs:
            self._index(sub)
        if self._db is not None:
            now = time.time()
            self._db.executemany(
                "INSERT INTO push_subs VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (endpoint) DO UPDATE SET "
                "p256dh = excluded.p256dh, auth = excluded.auth, zones = excluded.zones, tester = excluded.tester, "
                "lang = excluded.lang, created = excluded.created",
                [(s.endpoint, s.p256dh, s.auth, json.dumps(sorted(s.zones)), int(s.tester), s.lang, now)
                 for s in subs])
        self._evict()

    def _evict(self) -> None:
        """Keep at most ``max_subscriptions``: the least recently (re)subscribed go first."""
        extra = len(self._subs) - self.max_subscriptions
        if extra <= 0:
            return
        victims = [e for e, _ in zip(self._created, range(extra), strict=False)]
        for endpoint in victims:
            self._unindex(endpoint)
        if self._db is not None:
            self._db.executemany("DELETE FROM push_subs WHERE endpoint = ?", [(e,) for e in victims])
        self.evicted += len(victims)

    def remove(self, endpoint: str) -> bool:
        old = self._unindex(endpoint)
        if self._db is not None:
            self._db.execute("DELETE FROM push_subs WHERE endpoint = ?", (endpoint,))
        return old is not None

    def for_zone(self, zone: str) -> list[Subscriber]:
        return [self._subs[e] for e in self._by_zone.get(zone, ())]

    def get(self, endpoint: str) -> Subscriber | None:
        return self._subs.get(endpoint)

    def __len__(self) -> int:
        return len(self._subs)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class VapidSigner:
    """Signs the VAPID JWT once per push-service origin and reuses it until shortly before it expires."""

    def __init__(self, vapid: Vapid02, subject: str, *, lifetime_s: int = 12 * 3600) -> None:
        if not subject.startswith(("mailto:", "https://")):
            raise ConfigError("VAPID subject must be a mailto: or https: URL")
        self._vapid = vapid
        self.subject = subject
        self.lifetime_s = lifetime_s
        self._cache: dict[str, tuple[float, str]] = {}

    @classmethod
    def generate(cls, subject: str) -> VapidSigner:
        v = Vapid02()
        v.generate_keys()
        return cls(v, subject)

    @classmethod
    def from_pem(cls, pem: bytes, subject: str) -> VapidSigner:
        try:
            return cls(Vapid02.from_pem(pem), subject)
        except Exception as exc:  # noqa: BLE001 - py_vapid raises assorted types; converted here
            raise ConfigError(f"VAPID private key unreadable: {type(exc).__name__}") from exc

    @property
    def public_key_b64(self) -> str:
        """The applicationServerKey the browser subscribes with (65-byte uncompressed point, base64url)."""
        raw = self._vapid.public_key.public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def header(self, endpoint: str) -> str:
        aud = origin_of(endpoint)
        now = time.time()
        cached = self._cache.get(aud)
        if cached is not None and cached[0] - 3600 > now:
            return cached[1]
        exp = int(now) + self.lifetime_s
        value = self._vapid.sign({"sub": self.subject, "aud": aud, "exp": exp})["Authorization"]
        self._cache[aud] = (exp, value)
        return value


class WebPushChannel(Channel):
    name = "webpush"

    def __init__(self, subscriptions: SubscriptionStore, signer: VapidSigner, *,
                 transport: httpx.AsyncBaseTransport | None = None, ttl_s: int = 3600, urgency: str = "high",
                 concurrency: int = 256, chunk: int = 2000, inline_below: int = 1000,
                 executor: Executor | None = None, workers: int = 2, **kw: float) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.subs = subscriptions
        self.signer = signer
        self.ttl_s = ttl_s
        self.urgency = urgency
        self.chunk = chunk
        self.inline_below = inline_below
        self._sem = asyncio.Semaphore(concurrency)
        self.concurrency = concurrency
        self.worker_fallbacks = 0
        self._executor = executor
        self._own_executor = executor is None
        self._workers = workers
        self._transport = transport if transport is not None else Http1Transport(max_per_origin=concurrency)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "subscriptions": len(self.subs), "ttl_s": self.ttl_s,
                "worker_fallbacks": self.worker_fallbacks}

    def _reset_pool(self) -> None:
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _transport_for_fallback(self) -> Http1Transport:
        assert isinstance(self._transport, Http1Transport)
        return self._transport

    def _pool(self) -> Executor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self._workers, mp_context=get_context("spawn"))
        return self._executor

    async def start(self) -> None:
        """Spawn the worker processes now (hub start-up), so the first alert does not pay for it."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._pool(), warm) for _ in range(self._workers)))

    async def deliver(self, alert: ResidentAlert, states: Sequence[ZoneState]) -> None:
        await asyncio.gather(*(self._deliver_zone(alert, st) for st in states))

    async def _deliver_zone(self, alert: ResidentAlert, state: ZoneState) -> None:
        subs = self.subs.for_zone(state.zone)
        if alert.exercise:
            testers = [s for s in subs if s.tester]
            if len(testers) != len(subs):
                self.note_skipped_exercise(len(subs) - len(testers))
            subs = testers
        if not subs:
            return
        payload = json.dumps(alert.public_payload(state.zone, state.version), ensure_ascii=False,
                             separators=(",", ":")).encode()
        topic = topic_for(state.zone)
        common = [("TTL", str(self.ttl_s)), ("Urgency", self.urgency), ("Topic", topic),
                  ("Content-Encoding", "aes128gcm"), ("Content-Type", "application/octet-stream")]
        if len(subs) >= self.inline_below and isinstance(self._transport, Http1Transport):
            await self._sharded(subs, payload, common)
            return
        bodies = await asyncio.to_thread(encrypt_batch, payload, [(s.p256dh, s.auth) for s in subs])
        await asyncio.gather(*(self._send(s, b, common) for s, b in zip(subs, bodies, strict=True)))

    async def _sharded(self, subs: list[Subscriber], payload: bytes, common: list[tuple[str, str]]) -> None:
        """Big fan-outs: chunks go to worker processes that encrypt and send; counters merge here."""
        loop = asyncio.get_running_loop()
        vapid = {o: self.signer.header(o + "/") for o in {origin_of(s.endpoint) for s in subs}}
        per_worker = max(1, self.concurrency // max(1, self._workers))
        jobs = [{"payload": payload, "headers": common, "vapid": vapid, "concurrency": per_worker,
                 "timeout_s": self.timeout_s, "retries": self.retries, "backoff_s": self.backoff_s,
                 "subs": [(s.endpoint, s.p256dh, s.auth) for s in subs[i:i + self.chunk]]}
                for i in range(0, len(subs), self.chunk)]
        pool = self._pool()

        async def one(job: dict[str, object]) -> dict[str, Any]:
            try:
                return await loop.run_in_executor(pool, send_chunk, job)
            except (BrokenProcessPool, OSError) as exc:
                # A dead worker must not lose notifications: send this chunk from here instead.
                self.worker_fallbacks += 1
                self.stats.last_error = f"webpush: worker failed ({type(exc).__name__}); sent in-process"
                self._reset_pool()
                return await run_job(job, self._transport_for_fallback())

        for fut in asyncio.as_completed([one(job) for job in jobs]):
            res = await fut
            st = res["stats"]
            for key in ("attempts", "delivered", "failed", "timeouts", "retries", "pruned"):
                setattr(self.stats, key, getattr(self.stats, key) + st[key])
            for key in ("delivered", "failed", "timeout", "retry", "pruned"):
                n = st["timeouts" if key == "timeout" else "retries" if key == "retry" else key]
                if n:
                    self._count(key, n)
            if res["encrypt_failed"]:
                self.stats.failed += res["encrypt_failed"]
                self._count("encrypt_failed", res["encrypt_failed"])
            if st["last_error"]:
                self.stats.last_error, self.stats.last_error_ts = st["last_error"], st["last_error_ts"]
            if st["delivered"]:
                self.stats.last_delivery_ts = st["last_delivery_ts"]
                self.stats.consecutive_failures = 0
            elif st["failed"]:
                self.stats.consecutive_failures += 1
            for endpoint in res["gone"]:
                self.subs.remove(endpoint)

    async def _send(self, sub: Subscriber, body: bytes | None, common: list[tuple[str, str]]) -> None:
        if body is None:
            self.stats.failed += 1
            self.stats.last_error = "webpush: encrypt_failed"
            self._count("encrypt_failed")
            return
        headers = [*common, ("Authorization", self.signer.header(sub.endpoint))]
        fast = self._transport if isinstance(self._transport, Http1Transport) else None

        async def post() -> None:
            if fast is not None:
                await post_one(fast, sub.endpoint, headers, body)
                return
            try:
                resp = await self._transport.handle_async_request(
                    httpx.Request("POST", sub.endpoint, content=body, headers=headers))
                text = await resp.aread()
            except httpx.HTTPError as exc:
                raise http_error(self.name, exc) from None
            if resp.status_code in (404, 410):
                raise ChannelError(self.name, "gone", str(resp.status_code), retryable=False)
            if resp.status_code not in (200, 201, 202):
                raise status_error(self.name, resp.status_code, text, resp.headers.get("retry-after"))

        async with self._sem:
            await self.attempt(post, on_gone=lambda: self.subs.remove(sub.endpoint))

    async def aclose(self) -> None:
        await self._transport.aclose()
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
