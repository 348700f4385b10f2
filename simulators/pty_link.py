"""A virtual serial cable: two ptys whose masters are relayed in-process (asyncio, event-driven).

Both ends are real `/dev/pts/N` paths that pyserial and pymodbus open like any serial port. With
``a_link`` / ``b_link`` the link also keeps stable symlinks (like udev's /dev/serial/by-id/...), which
is how a port can *vanish* (``vanish()``: ptys closed, symlinks removed) and come back (``restore()``:
fresh ptys, symlinks re-pointed) while a config keeps naming the same path.

Fault injection on the relay, per direction ("ab" = a -> b, "ba" = b -> a, or both when omitted):
``drop_prob`` / ``drop_next(n)`` lose bytes, ``inject(data)`` sends garbage, ``delay_s`` delays
delivery, ``unplug()`` / ``plug()`` stop and resume relaying (bytes written meanwhile are lost).
Counters say what happened. The relay keeps its own slave fds open so a pty never reports EIO when
an end closes and reopens its port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import termios
import tty
from dataclasses import dataclass, field
from pathlib import Path

from contract.errors import DozorError

_DIRS = ("ab", "ba")


class PtyLinkError(DozorError):
    pass


@dataclass
class LinkCounters:
    relayed: dict[str, int] = field(default_factory=lambda: {"ab": 0, "ba": 0})
    dropped: dict[str, int] = field(default_factory=lambda: {"ab": 0, "ba": 0})
    injected: dict[str, int] = field(default_factory=lambda: {"ab": 0, "ba": 0})


class _Pty:
    """One pty pair; we hold the master (relay side) and one slave fd (keeps the pty alive)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave, termios.TCSANOW)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class PtyLink:
    """``async with PtyLink() as link:`` open ``link.a`` at one end and ``link.b`` at the other."""

    def __init__(self, *, a_link: str | Path | None = None, b_link: str | Path | None = None,
                 seed: int | None = None) -> None:
        self._links = (Path(a_link) if a_link else None, Path(b_link) if b_link else None)
        self._rng = random.Random(seed)
        self._ptys: tuple[_Pty, _Pty] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, bytearray] = {"ab": bytearray(), "ba": bytearray()}
        self._writer_on: dict[str, bool] = {"ab": False, "ba": False}
        self._drop_next: dict[str, int] = {"ab": 0, "ba": 0}
        self._timers: set[asyncio.TimerHandle] = set()
        self.drop_prob: dict[str, float] = {"ab": 0.0, "ba": 0.0}
        self.delay_s: dict[str, float] = {"ab": 0.0, "ba": 0.0}
        self.plugged = True
        self.counters = LinkCounters()

    # ------------------------------------------------------------------ paths
    @property
    def a(self) -> str:
        return str(self._links[0]) if self._links[0] else self._require()[0].path

    @property
    def b(self) -> str:
        return str(self._links[1]) if self._links[1] else self._require()[1].path

    @property
    def pts(self) -> tuple[str, str]:
        """The current real /dev/pts paths of both ends."""
        a, b = self._require()
        return a.path, b.path

    def _require(self) -> tuple[_Pty, _Pty]:
        if self._ptys is None:
            raise PtyLinkError("the link is not open (vanished or closed)")
        return self._ptys

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> PtyLink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> PtyLink:
        self._loop = asyncio.get_running_loop()
        self._open()
        return self

    def _open(self) -> None:
        assert self._loop is not None
        a, b = _Pty(), _Pty()
        self._ptys = (a, b)
        for link, pty in zip(self._links, self._ptys, strict=True):
            if link is not None:
                tmp = link.with_name(link.name + ".tmp")
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                tmp.symlink_to(pty.path)
                tmp.replace(link)
        self._loop.add_reader(a.master, self._on_readable, "ab")
        self._loop.add_reader(b.master, self._on_readable, "ba")

    def _shut(self) -> None:
        if self._ptys is None:
            return
        assert self._loop is not None
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for pty in self._ptys:
            self._loop.remove_reader(pty.master)
            self._loop.remove_writer(pty.master)
            pty.close()
        for d in _DIRS:
            self._pending[d].clear()
            self._writer_on[d] = False
        self._ptys = None

    async def close(self) -> None:
        self._shut()
        for link in self._links:
            if link is not None:
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()

    def vanish(self) -> None:
        """The USB adapter is pulled: ptys closed, symlinks removed. Open ports get I/O errors."""
        self._shut()
        for link in self._links:
            if link is not None:
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()

    def restore(self) -> None:
        """The adapter is back: fresh ptys behind the same symlinks (ends must reopen)."""
        if self._ptys is None:
            self._open()

    # ------------------------------------------------------------------ faults
    def _dirs(self, direction: str | None) -> tuple[str, ...]:
        if direction is None:
            return _DIRS
        if direction not in _DIRS:
            raise PtyLinkError(f"direction must be 'ab' or 'ba', not {direction!r}")
        return (direction,)

    def unplug(self) -> None:
        self.plugged = False

    def plug(self) -> None:
        self.plugged = True

    def drop_next(self, n: int, direction: str | None = None) -> None:
        for d in self._dirs(direction):
            self._drop_next[d] += n

    def set_drop_prob(self, p: float, direction: str | None = None) -> None:
        for d in self._dirs(direction):
            self.drop_prob[d] = p

    def set_delay(self, seconds: float, direction: str | None = None) -> None:
        for d in self._dirs(direction):
            self.delay_s[d] = seconds

    def inject(self, data: bytes, direction: str = "ab") -> None:
        """Write garbage into the line as if it came from the sending end of ``direction``."""
        (d,) = self._dirs(direction)
        self.counters.injected[d] += len(data)
        self._deliver(d, bytes(data))

    # ------------------------------------------------------------------ relay
    def _on_readable(self, d: str) -> None:
        a, b = self._require()
        src = a if d == "ab" else b
        try:
            data = os.read(src.master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while an end re-opens; we hold a slave fd, so this is transient
        if not data:
            return
        if not self.plugged:
            self.counters.dropped[d] += len(data)
            return
        if self._drop_next[d]:
            n = min(self._drop_next[d], len(data))
            self._drop_next[d] -= n
            self.counters.dropped[d] += n
            data = data[n:]
        if self.drop_prob[d] > 0 and data:
            kept = bytes(x for x in data if self._rng.random() >= self.drop_prob[d])
            self.counters.dropped[d] += len(data) - len(kept)
            data = kept
        if not data:
            return
        if self.delay_s[d] > 0:
            assert self._loop is not None
            holder: list[asyncio.TimerHandle] = []
            holder.append(self._loop.call_later(self.delay_s[d], self._deliver_later, d, data, holder))
            self._timers.add(holder[0])
        else:
            self._deliver(d, data)

    def _deliver_later(self, d: str, data: bytes, holder: list[asyncio.TimerHandle]) -> None:
        self._timers.discard(holder[0])
        if self._ptys is not None:
            self._deliver(d, data)

    def _deliver(self, d: str, data: bytes) -> None:
        a, b = self._require()
        dst = b if d == "ab" else a
        self.counters.relayed[d] += len(data)
        buf = self._pending[d]
        buf += data
        self._flush(d, dst.master)

    def _flush(self, d: str, fd: int) -> None:
        buf = self._pending[d]
        while buf:
            try:
                n = os.write(fd, buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                buf.clear()  # the other end is gone; a real cable would lose the bytes too
                break
            del buf[:n]
        assert self._loop is not None
        if buf and not self._writer_on[d]:
            self._loop.add_writer(fd, self._flush, d, fd)
            self._writer_on[d] = True
        elif not buf and self._writer_on[d]:
            self._loop.remove_writer(fd)
            self._writer_on[d] = False
