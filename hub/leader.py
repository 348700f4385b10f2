"""One hub at a time on a shared state database: a cold standby that takes over, fenced (issue 14 §2, first step).

With ``[database]`` on PostgreSQL, a hub holds the ``hub`` lease (``hub.repo.lease``) before it resumes alerts or
connects to the broker. A second hub started against the same database waits as a standby; when the leader dies
(kill -9, power) its lease expires after ``[hub] leader_lease_s`` and the standby takes over: it reads the open
alerts, device tracks and replay floors from the database and goes on (same ``[mqtt] client_id``: it also takes
over the broker session with the acks queued for it).

Fencing: a leader that loses its lease (paused with SIGSTOP past the expiry, cut off from the database) sends no
command (``publish`` and ``publish_nowait`` refuse once ``Lease.valid()`` is false), writes no hub state (``Store``
flushes check the lease inside their transaction) and stops (exit code 2) when its renewal fails. The renewal
runs in a thread of its own, so a busy event loop does not cost the lease; a loop silent for ``LOOP_STALL_TTLS``
leases does (the thread stops renewing).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable

from hub.errors import StoreError
from hub.repo.db import Database
from hub.repo.lease import Lease

log = logging.getLogger(__name__)
LOOP_STALL_TTLS = 4  # the lease is renewed through an event-loop stall of up to this many leases (12 s by default)


class Leadership:
    def __init__(self, db: Database, ttl_s: float, *, on_fenced: Callable[[], None] = lambda: None,
                 holder: str | None = None) -> None:
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.lease = Lease(db, "hub", self.holder, ttl_s=ttl_s)
        self.on_fenced = on_fenced
        self.lost = asyncio.Event()
        self.loop_seen = time.monotonic()  # the event loop's last sign of life (the renewal thread reads it)

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
        """Renew the lease every quarter of it from a thread of its own, so a busy event loop (a city's
        dispatch, a takeover reading 10,000 device rows, a starved machine) does not cost the lease; the loop
        only proves it is alive. When another hub has taken the lease, set ``lost`` (the hub stops)."""
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        self.loop_seen = time.monotonic()
        thread = threading.Thread(target=self._renew, args=(loop, stop), name="hub-lease", daemon=True)
        thread.start()
        try:
            while True:
                self.loop_seen = time.monotonic()
                await asyncio.sleep(self.lease.ttl_s / 4)
        finally:
            stop.set()
            thread.join(timeout=self.lease.ttl_s)  # no renewal after this (a release follows at shutdown)

    def _renew(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        """The renewal thread. It stops renewing when the event loop has not run for ``LOOP_STALL_TTLS`` leases
        (a wedged hub must not keep the city's leadership); the lease then expires and a follower takes over.
        Fencing is unchanged: every command and write checks the lease (a paused process pauses this thread too,
        and ``Lease.valid`` runs on a monotonic clock)."""
        stalled = False
        while not stop.wait(self.lease.ttl_s / 4):
            quiet = time.monotonic() - self.loop_seen
            if quiet > LOOP_STALL_TTLS * self.lease.ttl_s:
                if not stalled:
                    log.error("the event loop has not run for %.1f s: the hub lease is no longer renewed", quiet)
                stalled = True
                continue
            stalled = False
            try:
                held = self.lease.acquire()
                cur = None if held else self.lease.current()
            except StoreError as exc:  # the lease may expire; the next renewal says whether it is still ours
                log.error("cannot renew the hub lease: %s", exc)
                continue
            if not held:
                loop.call_soon_threadsafe(self._lose, (cur or {}).get("holder", "?"))
                return

    def _lose(self, holder: str) -> None:
        log.error("lost the state database lease to %s: this hub stops sending and exits", holder)
        self.lost.set()

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
