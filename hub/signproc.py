"""The command signer process: Ed25519 signatures for a big phase's commands, on a second core.

A city's phase is one signature per gateway (2,000 for 2,000 gateways). The event loop prepares each step's
claims (hub/alerts/signer.py) and hands their signing inputs here; while the worker signs step i+1, the loop
commits step i to the store and writes it to the broker.

The worker (hub/signworker.py, PyNaCl) is a child process on two pipes that the event loop itself watches
(``add_reader``/``add_writer``, non-blocking): no thread of the hub takes part in a round trip. (A
``ProcessPoolExecutor`` did, its queue-feeder and result threads each needing the GIL while the loop was busy
with the phase: measured, a step's signatures reached the loop 10-20 ms after the worker had them.)

The private key reaches the worker once, as the first bytes on its standard input, when it starts or the
active key changes; it is never logged, never in argv, the environment or a file, and signing inputs are the
only other thing sent. If the worker dies or cannot start, every step still waiting for it fails (the caller
signs those on the loop and counts it) and the next batch starts a fresh worker. The worker exits when its
input ends or within ``signworker.PARENT_CHECK_S`` of its hub's death.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import struct
import subprocess
import sys
from collections import deque
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.signworker import ANSWER, SIG_B64

log = logging.getLogger(__name__)
REAP_S = 2.0
WORKER = str(Path(__file__).with_name("signworker.py"))
Signed = list[tuple[bytes, str]]  # per signing input: (base64url signature, hex SHA-256 of the compact JWS)


PIPE_BYTES = 1 << 20  # a step's signing inputs in one write, its answer in one read (Linux: fcntl F_SETPIPE_SZ)


def _widen(fd: int) -> None:
    """A pipe of ``PIPE_BYTES`` where the system allows it (64 KiB otherwise: the same bytes, more wake-ups)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (AttributeError, OSError):  # not Linux, or above /proc/sys/fs/pipe-max-size for this user
        log.debug("command signer pipe left at the system's default size")


class SignerError(RuntimeError):
    """The worker went away or answered something that is not an answer."""


class SignerProcess:
    """One worker process that signs with one key; a new key (rotation) starts a new worker."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._kid: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: deque[tuple[asyncio.Future[Signed], int]] = deque()
        self._rbuf = bytearray()
        self._wbuf = bytearray()
        self.started = 0  # worker processes started (a replaced or dead one is followed by another)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _worker(self, key: Ed25519PrivateKey, kid: str) -> subprocess.Popen:
        if self._proc is None or self._kid != kid:
            self.close()
            self._loop = asyncio.get_running_loop()
            proc = subprocess.Popen([sys.executable, "-I", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    close_fds=True)
            assert proc.stdin is not None and proc.stdout is not None
            for pipe in (proc.stdin, proc.stdout):
                os.set_blocking(pipe.fileno(), False)
                _widen(pipe.fileno())
            self._proc, self._kid = proc, kid
            self.started += 1
            self._loop.add_reader(proc.stdout.fileno(), self._readable)
            self._write(key.private_bytes_raw())
        return self._proc

    async def start(self, key: Ed25519PrivateKey, kid: str) -> None:
        """Start the worker now (hub start-up) and wait until it answers, so the first big alert does not wait
        for a process to start."""
        await self.submit(key, kid, [])

    def submit(self, key: Ed25519PrivateKey, kid: str, inputs: list[bytes]) -> asyncio.Future[Signed]:
        """Queue ``inputs`` for signing; the future has one (signature, token SHA-256) per input, in order. It
        fails with SignerError if the worker dies first, and is cancelled if the worker is closed first."""
        self._worker(key, kid)
        assert self._loop is not None
        fut: asyncio.Future[Signed] = self._loop.create_future()
        body = b"\n".join(inputs)
        self._waiting.append((fut, len(inputs)))
        self._write(struct.pack("!II", len(body), len(inputs)) + body)
        return fut

    # ---- the pipes, on the event loop ------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or self._loop is None:
            raise SignerError("the command signer process is not running")
        if self._wbuf:  # earlier bytes still wait for the pipe: keep the order
            self._wbuf += data
            return
        try:
            n = os.write(proc.stdin.fileno(), data)
        except BlockingIOError:
            n = 0
        except OSError as exc:  # the worker is gone
            self._failed(SignerError(f"command signer process: {exc}"))
            return
        if n < len(data):
            self._wbuf += data[n:]
            self._loop.add_writer(proc.stdin.fileno(), self._writable)

    def _writable(self) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or self._loop is None:
            return
        try:
            n = os.write(proc.stdin.fileno(), self._wbuf)
        except BlockingIOError:
            return
        except OSError as exc:
            self._failed(SignerError(f"command signer process: {exc}"))
            return
        del self._wbuf[:n]
        if not self._wbuf:
            self._loop.remove_writer(proc.stdin.fileno())

    def _readable(self) -> None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        try:
            data = os.read(proc.stdout.fileno(), 1 << 20)
        except BlockingIOError:
            return
        except OSError as exc:
            self._failed(SignerError(f"command signer process: {exc}"))
            return
        if not data:
            self._failed(SignerError(f"command signer process {proc.pid} exited"))
            return
        self._rbuf += data
        while len(self._rbuf) >= 4 and self._waiting:
            (count,) = struct.unpack_from("!I", self._rbuf)
            end = 4 + count * ANSWER
            if len(self._rbuf) < end:
                return
            fut, want = self._waiting.popleft()
            if count != want:
                self._failed(SignerError(f"{count} signatures for {want} signing inputs"))
                return
            body = bytes(self._rbuf[4:end])
            del self._rbuf[:end]
            if not fut.done():
                fut.set_result([(body[i:i + SIG_B64], body[i + SIG_B64:i + ANSWER].decode())
                                for i in range(0, count * ANSWER, ANSWER)])
        if self._rbuf and not self._waiting:
            self._failed(SignerError("the command signer process answered more than it was asked"))

    def _failed(self, exc: SignerError) -> None:
        waiting, self._waiting = self._waiting, deque()
        self.close()
        for fut, _ in waiting:
            if not fut.done():
                fut.set_exception(exc)

    def close(self) -> None:
        """Stop the worker; what still waits for it is cancelled."""
        proc, self._proc, self._kid = self._proc, None, None
        waiting, self._waiting = self._waiting, deque()
        self._rbuf.clear()
        self._wbuf.clear()
        for fut, _ in waiting:
            fut.cancel()
        if proc is None:
            return
        assert proc.stdin is not None and proc.stdout is not None
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(proc.stdout.fileno())
            self._loop.remove_writer(proc.stdin.fileno())
        proc.stdin.close()  # never written through its buffer (os.write above): nothing to flush
        proc.stdout.close()
        proc.kill()  # it holds nothing worth a graceful end; reaped here, so no zombie is left behind
        try:
            proc.wait(REAP_S)
        except subprocess.TimeoutExpired:  # Popen reaps it later, when it is collected
            log.warning("command signer process %d not gone %.0f s after SIGKILL", proc.pid, REAP_S)
