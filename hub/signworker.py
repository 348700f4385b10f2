"""The command signer's worker process (hub/signproc.py starts it as ``python -I hub/signworker.py``). It imports
the standard library and PyNaCl only (libsodium's Ed25519: ~19 µs a signature here, against ~29 µs through
cryptography's OpenSSL, the same bytes: Ed25519 is deterministic).

Its standard input carries, first, the 32-byte private key seed (the pipe from the hub; never argv, the
environment or a file), then requests; its standard output carries the answers, one per request, in order:

    request:  !II (body length, count) + body: ``count`` signing inputs joined by b"\\n"
              (a JWS signing input is base64url + "." + base64url: it never holds a newline)
    answer:   !I (count) + ``count`` x 150 bytes: the base64url signature (86 bytes) and the hex SHA-256 of the
              whole compact JWS (input "." signature; the hub stores and matches commands by it) (64 bytes)

It exits when its input ends (the hub closed the pipe or died) or its parent process is gone.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import struct
import sys
import threading
import time

PARENT_CHECK_S = 0.5
SIG_B64 = 86  # an Ed25519 signature (64 bytes) in base64url without padding
ANSWER = SIG_B64 + 64  # per input: the signature and the token's hex SHA-256


def sign_all(sign, body: bytes, count: int) -> bytes:
    """The answer to one request (``sign``: bytes -> 64-byte signature)."""
    if count == 0:
        return struct.pack("!I", 0)
    inputs = body.split(b"\n")
    if len(inputs) != count:
        raise ValueError(f"{len(inputs)} signing inputs where the header says {count}")
    out = [struct.pack("!I", count)]
    b64, sha = base64.urlsafe_b64encode, hashlib.sha256
    for data in inputs:
        sig = b64(sign(data))[:SIG_B64]
        out.append(sig)
        out.append(sha(data + b"." + sig).hexdigest().encode())
    return b"".join(out)


def _read(stream, n: int) -> bytes | None:
    buf = stream.read(n)
    return buf if buf is not None and len(buf) == n else None


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)  # the hub is gone: nothing left to sign for


def main() -> int:
    import nacl.signing  # here, not at import: the hub imports this module's constants without PyNaCl's cost

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the hub's terminal is the hub's to handle
    threading.Thread(target=_watch, args=(os.getppid(),), name="hub-watch", daemon=True).start()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    seed = _read(stdin, 32)
    if seed is None:
        return 1
    key = nacl.signing.SigningKey(seed)
    del seed

    def sign(data: bytes) -> bytes:
        return key.sign(data).signature

    while (head := _read(stdin, 8)) is not None:
        length, count = struct.unpack("!II", head)
        body = _read(stdin, length) if length else b""
        if body is None:
            return 1
        stdout.write(sign_all(sign, body, count))
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
