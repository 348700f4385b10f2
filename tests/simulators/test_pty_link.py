"""The virtual serial cable: real /dev/pts ends opened with pyserial, relay faults, vanish/restore."""

from __future__ import annotations

import asyncio
import os

import pytest
import serial

from simulators.pty_link import PtyLink, PtyLinkError


def _open(path: str) -> serial.Serial:
    return serial.Serial(path, baudrate=19200, timeout=0)


async def _read(port: serial.Serial, n: int, within: float = 5.0) -> bytes:
    """Read until n bytes arrived (protocol deadline, not a speed check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    buf = b""
    while len(buf) < n and loop.time() < deadline:
        buf += port.read(n - len(buf))
        if len(buf) < n:
            await asyncio.sleep(0.005)
    return buf


async def test_relays_both_ways_between_real_pts_paths():
    async with PtyLink() as link:
        assert link.a.startswith("/dev/pts/") and link.b.startswith("/dev/pts/") and link.a != link.b
        a, b = _open(link.a), _open(link.b)
        try:
            a.write(b"hello from a")
            assert await _read(b, 12) == b"hello from a"
            b.write(bytes(range(256)))
            assert await _read(a, 256) == bytes(range(256))  # raw mode: every byte value passes
            assert link.counters.relayed == {"ab": 12, "ba": 256}
        finally:
            a.close()
            b.close()


async def test_drop_inject_unplug_and_delay():
    async with PtyLink(seed=1) as link:
        a, b = _open(link.a), _open(link.b)
        try:
            link.drop_next(3, "ab")
            a.write(b"abcdef")
            assert await _read(b, 3) == b"def"
            link.inject(b"\xff\x00garbage", "ab")
            assert await _read(b, 9) == b"\xff\x00garbage"
            link.unplug()
            a.write(b"lost")
            await asyncio.sleep(0.1)
            assert b.read(100) == b""
            link.plug()
            link.set_delay(0.2, "ab")
            a.write(b"later")
            await asyncio.sleep(0.05)
            assert b.read(100) == b""  # still in flight
            assert await _read(b, 5) == b"later"
            link.set_delay(0, "ab")
            link.set_drop_prob(1.0, "ba")
            b.write(b"x" * 10)
            await asyncio.sleep(0.1)
            assert a.read(100) == b""
            assert link.counters.dropped["ab"] == 3 + 4 and link.counters.dropped["ba"] == 10
            assert link.counters.injected["ab"] == 9
        finally:
            a.close()
            b.close()


async def test_vanish_and_restore_behind_stable_symlinks(tmp_path):
    link = PtyLink(a_link=tmp_path / "ttyA", b_link=tmp_path / "ttyB")
    async with link:
        first = link.pts
        assert os.readlink(link.a) == first[0]
        link.vanish()
        assert not (tmp_path / "ttyA").exists() and not (tmp_path / "ttyB").exists()
        with pytest.raises(PtyLinkError):
            _ = link.pts
        link.restore()
        assert (tmp_path / "ttyA").exists()
        a, b = _open(link.a), _open(link.b)
        try:
            a.write(b"back")
            assert await _read(b, 4) == b"back"
        finally:
            a.close()
            b.close()
    assert not (tmp_path / "ttyA").exists()


async def test_an_end_can_close_and_reopen_without_breaking_the_link():
    async with PtyLink() as link:
        b = _open(link.b)
        a = _open(link.a)
        a.close()
        a = _open(link.a)
        try:
            a.write(b"again")
            assert await _read(b, 5) == b"again"
        finally:
            a.close()
            b.close()


def test_bad_direction_is_a_clear_error():
    link = PtyLink()
    with pytest.raises(PtyLinkError, match="direction"):
        link.drop_next(1, "xy")
