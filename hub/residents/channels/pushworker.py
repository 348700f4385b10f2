"""The Web Push fan-out inside worker processes: each worker encrypts *and* sends its chunk.

A big fan-out is CPU-bound (one ECDH per message, plus HTTP framing), so it is sharded over processes and
the hub's event loop, which the siren commands share, only dispatches chunks and merges counters. Each
worker keeps one event loop and one keep-alive transport for its lifetime. Timeouts, retries, Retry-After
and 404/410 are handled exactly as in-process (the same ``Channel.attempt``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import httpx

from contract.models import ZoneState
from hub.residents.channels.base import Channel, http_error, status_error
from hub.residents.channels.ece import encrypt
from hub.residents.channels.fasthttp import Http1Transport
from hub.residents.errors import ChannelError
from hub.residents.models import ResidentAlert

_STATE: dict[str, Any] = {}


class _ChunkSender(Channel):
    name = "webpush"

    async def deliver(self, alert: ResidentAlert, states: Sequence[ZoneState]) -> None:  # pragma: no cover
        raise NotImplementedError


def origin_of(endpoint: str) -> str:
    scheme, _, rest = endpoint.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


async def post_one(transport: Http1Transport, endpoint: str, headers: list[tuple[str, str]], body: bytes,
                   channel: str = "webpush") -> None:
    """One Web Push POST; raises ChannelError (reason ``gone`` for 404/410)."""
    try:
        status, hdrs, text = await transport.post(endpoint, headers, body)
    except httpx.HTTPError as exc:
        raise http_error(channel, exc) from None
    if status in (404, 410):
        raise ChannelError(channel, "gone", str(status), retryable=False)
    if status not in (200, 201, 202):
        ra = next((v.decode("latin-1") for k, v in hdrs if k.lower() == b"retry-after"), None)
        raise status_error(channel, status, text, ra)


async def run_job(job: dict[str, Any], transport: Http1Transport) -> dict[str, Any]:
    sender = _ChunkSender(timeout_s=job["timeout_s"], retries=job["retries"], backoff_s=job["backoff_s"])
    sem = asyncio.Semaphore(job["concurrency"])
    common: list[tuple[str, str]] = job["headers"]
    vapid: dict[str, str] = job["vapid"]
    gone: list[str] = []
    encrypt_failed = 0

    async def send(endpoint: str, body: bytes) -> None:
        headers = [*common, ("Authorization", vapid[origin_of(endpoint)])]
        async with sem:
            await sender.attempt(lambda: post_one(transport, endpoint, headers, body),
                                 on_gone=lambda: gone.append(endpoint))

    tasks = []
    for i, (endpoint, p256dh, auth) in enumerate(job["subs"]):
        try:
            body = encrypt(job["payload"], p256dh, auth)
        except (ValueError, TypeError):
            encrypt_failed += 1
            continue
        tasks.append(asyncio.create_task(send(endpoint, body)))
        if i % 8 == 7:
            await asyncio.sleep(0)  # let sends progress while encrypting
    await asyncio.gather(*tasks)
    return {"stats": asdict(sender.stats), "gone": gone, "encrypt_failed": encrypt_failed}


def send_chunk(job: dict[str, Any]) -> dict[str, Any]:
    """Entry point in the worker process."""
    loop = _STATE.get("loop")
    if loop is None:
        loop = _STATE["loop"] = asyncio.new_event_loop()
        _STATE["transport"] = Http1Transport(max_per_origin=job["concurrency"])
    return loop.run_until_complete(run_job(job, _STATE["transport"]))


def warm() -> bool:
    """Pre-spawn check: imports done, the process is ready (sleeps a little so each worker gets one)."""
    import time

    time.sleep(0.2)
    return True
