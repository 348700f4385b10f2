"""One send's commands as a ``Batch``: prepared on the event loop (claims from a per-send template, fresh jtis),
signed (here, or by the signer process, hub/signproc.py), then committed and put on the wire by the engine
(hub/alerts/dispatch.py). Only signing happens outside the loop: no state of the engine is touched there, and
nothing is signed ahead of its send (every batch's jtis and ``iat`` are new when it is prepared, and a batch
whose phase was superseded while it was being signed is dropped unsent).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.command import seal
from contract.models import Action
from hub.alerts.model import Alert, Track


def new_jtis(n: int) -> list[str]:
    """``n`` command ids, 128 random bits each (one read of the OS's CSPRNG for all of them, not one per id)."""
    raw = os.urandom(16 * n).hex()
    return [raw[i:i + 32] for i in range(0, 32 * n, 32)]


@dataclass(slots=True)
class Outgoing:
    """One command: to one gateway, for up to MAX_TARGETS of its devices."""

    gateway: str
    jti: str
    targets: tuple[str, ...]
    tracks: list[Track]
    signing_input: bytes
    targets_json: str
    token: bytes = b""
    sha: str = ""  # hex SHA-256 of ``token`` (the signer process computes it with the signature)


@dataclass(slots=True)
class Batch:
    alert: Alert
    seq: int  # the alert's phase_seq when prepared: a newer phase drops the batch unsent
    act: Action
    key: Ed25519PrivateKey
    kid: str
    holders: int  # the engine's ``holder_changes`` when prepared
    commands: list[Outgoing] = field(default_factory=list)

    def sign(self) -> Batch:
        """Sign here (a small send, a retry, or when the signer process is not there)."""
        for cmd in self.commands:
            cmd.token = seal(cmd.signing_input, self.key)
        return self

    @property
    def inputs(self) -> list[bytes]:
        return [cmd.signing_input for cmd in self.commands]

    def attach(self, signed: list[tuple[bytes, str]]) -> Batch:
        """The signer process's answer, in order: each command's token is its signing input and the base64url
        signature, with the token's SHA-256 as the process computed it."""
        if len(signed) != len(self.commands):
            raise ValueError(f"{len(signed)} signatures for {len(self.commands)} commands")
        for cmd, (sig, sha) in zip(self.commands, signed, strict=True):
            cmd.token, cmd.sha = cmd.signing_input + b"." + sig, sha
        return self


class GcPause:
    """Python's cyclic garbage collector held off while phases go out. A phase allocates ~100,000 small objects
    (claims, rows, packets) in a heap holding every live alert's tracks, so the collector would run several times
    in the middle of it (measured: ~50 ms of a 2,000-gateway phase once a few alerts are in memory); afterwards
    it runs as usual. Reference counting still frees almost everything at once; only cycles wait. One hold per
    phase in flight; a hold older than ``max_s`` (a phase task that never ended) is dropped at the next call."""

    def __init__(self, max_s: float = 5.0) -> None:
        self.max_s = max_s
        self.holds = 0
        self._ours = False  # the collector was on, and this turned it off
        self._since = 0.0
        self._epoch = 0

    def hold(self) -> Callable[..., None]:
        """Hold the collector off; returns the release (idempotent: call it as often as convenient)."""
        self.expire()
        if self.holds == 0:
            self._since = time.monotonic()
            if gc.isenabled():
                gc.disable()
                self._ours = True
        self.holds += 1
        epoch = self._epoch
        done = [False]

        def release(*_: object) -> None:
            if not done[0]:
                done[0] = True
                if epoch == self._epoch:  # not already dropped by expire()
                    self.release()
        return release

    def release(self) -> None:
        self.holds -= 1
        if self.holds == 0 and self._ours:
            gc.enable()
            self._ours = False

    def expire(self) -> None:
        if self.holds and time.monotonic() - self._since > self.max_s:
            self._epoch += 1  # every hold until now is void
            self.holds = 1
            self.release()


GC_PAUSE = GcPause()  # the collector is one per process, and so is this
