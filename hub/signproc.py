"""The command signer process: Ed25519 signatures for a big phase's commands, on a second core.

A city's phase is one signature per gateway (2,000 for 2,000 gateways, ~40 µs each). The event loop prepares
each step's claims (hub/alerts/signer.py) and hands their signing inputs here; while this process signs step
i+1, the loop commits step i to the store and writes it to the broker. A thread would share the GIL with the
loop (cryptography releases it inside ``sign``, but every hand-back costs a GIL switch, and on a loaded machine
an OS wake-up), so this is one worker process started with ``spawn`` (this module imports only cryptography).

The private key reaches the worker once, through the pool's initializer (the pipe between the two processes),
when the pool starts or the active key changes; it is never logged, never written anywhere, and signing inputs
are the only other thing sent. If the worker dies or cannot start, the loop signs the batch itself (counted by
the caller) and the next batch starts a fresh worker. The worker exits within ``PARENT_CHECK_S`` of its hub.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_KEY: list[Ed25519PrivateKey] = []  # in the worker: the one key it signs with
PARENT_CHECK_S = 0.5


def _load(seed: bytes) -> None:
    """The worker's initializer: the key, and a watch on the hub (a hub killed with SIGKILL leaves no orphan)."""
    _KEY[:] = [Ed25519PrivateKey.from_private_bytes(seed)]
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)  # the hub is gone (its pipe may stay open in a grandchild): nothing left to sign for

    threading.Thread(target=watch, name="hub-watch", daemon=True).start()


def sign_all(inputs: list[bytes]) -> list[bytes]:
    """In the worker: one signature per signing input."""
    key = _KEY[0]
    return [key.sign(data) for data in inputs]


def _ready() -> bool:
    return bool(_KEY)


class SignerProcess:
    """One worker process that signs with one key; a new key (rotation) starts a new worker."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._kid: str | None = None

    def _executor(self, key: Ed25519PrivateKey, kid: str) -> ProcessPoolExecutor:
        if self._pool is None or self._kid != kid:
            self.close()
            self._pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_load,
                                             initargs=(key.private_bytes_raw(),))
            self._kid = kid
        return self._pool

    async def start(self, key: Ed25519PrivateKey, kid: str) -> None:
        """Start the worker now (hub start-up), so the first big alert does not wait for a process to spawn."""
        await asyncio.wrap_future(self._executor(key, kid).submit(_ready))

    def submit(self, key: Ed25519PrivateKey, kid: str, inputs: list[bytes]) -> asyncio.Future[list[bytes]]:
        return asyncio.wrap_future(self._executor(key, kid).submit(sign_all, inputs))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._kid = None, None
