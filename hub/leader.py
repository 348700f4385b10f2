"""One hub at a time on a shared state database: a cold standby that takes over, fenced (issue 14 §2, first step).

With ``[database]`` on PostgreSQL, a hub holds the ``hub`` lease (``hub.repo.lease``) before it resumes alerts or
connects to the broker. A second hub started against the same database waits as a standby; when the leader dies
(kill -9, power) its lease expires after ``[hub] leader_lease_s`` and the standby takes over: it reads the open
alerts, device tracks and replay floors from the database and goes on (same ``[mqtt] client_id``: it also takes
over the broker session with the acks queued for it).

Fencing: a leader that loses its lease (paused with SIGSTOP past the expiry, cut off from the database) sends no
command (``publish`` and ``publish_nowait`` refuse once ``Lease.valid()`` is false), writes no hub state (``Store``
flushes check the lease inside their transaction) and stops (exit code 2) when its renewal fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from hub.errors import StoreError
from hub.repo.db import Database
from hub.repo.lease import Lease

log = logging.getLogger(__name__)


class Leadership:
    def __init__(self, db: Database, ttl_s: float, *, on_fenced: Callable[[], None] = lambda: None,
                 holder: str | None = None) -> None:
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.lease = Lease(db, "hub", self.holder, ttl_s=ttl_s)
        self.on_fenced = on_fenced
        self.lost = asyncio.Event()

    async def take(self) -> None:
        """Wait until this hub holds the lease (at once when no other hub does)."""
        told = False
        while True:
            try:
                if await asyncio.to_thread(self.lease.acquire):
                    break
            except StoreError as exc:
                log.error("cannot reach the state database for the hub lease: %s", exc)
            if not told:
                cur = await asyncio.to_thread(self.lease.current)
                log.warning("standby: hub %s holds the state database; taking over when its lease expires",
                            (cur or {}).get("holder", "?"))
                told = True
            await asyncio.sleep(self.lease.ttl_s / 4)
        log.warning("hub %s leads (lease term %d)", self.holder, self.lease.token)

    async def keep(self) -> None:
        """Renew the lease; when another hub has taken it, set ``lost`` (the hub stops)."""
        while True:
            await asyncio.sleep(self.lease.ttl_s / 4)
            if not await asyncio.to_thread(self.lease.acquire):
                cur = await asyncio.to_thread(self.lease.current)
                log.error("lost the state database lease to %s: this hub stops sending and exits",
                          (cur or {}).get("holder", "?"))
                self.lost.set()
                await asyncio.Event().wait()  # the hub stops on ``lost``; nothing to restart here

    def fence(self, publish: Callable[..., Awaitable[bool]]) -> Callable[..., Awaitable[bool]]:
        async def fenced(*args, **kwargs) -> bool:
            if not self.lease.valid():
                self.on_fenced()
                return False
            return await publish(*args, **kwargs)
        return fenced

    def fence_nowait(self, publish: Callable[..., bool]) -> Callable[..., bool]:
        def fenced(*args, **kwargs) -> bool:
            if not self.lease.valid():
                self.on_fenced()
                return False
            return publish(*args, **kwargs)
        return fenced

    def release(self) -> None:
        try:
            self.lease.release()
        except StoreError as exc:
            log.error("cannot release the hub lease (the standby waits for its expiry): %s", exc)
