"""sd_notify over a real unix datagram socket: READY=1 once, then WATCHDOG=1 keep-alives from the event loop,
from the library and from a running `dozor hub run` process exactly as systemd would start it."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from runtime import sdnotify
from simulators.brokers import free_port
from tests.deploy.helpers import Procs, dozor


def receiver(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + path[1:] if path.startswith("@") else path)
    s.settimeout(30)
    return s


def collect(s: socket.socket, watchdogs: int) -> list[str]:
    got: list[str] = []
    while sum(m == "WATCHDOG=1" for m in got) < watchdogs:
        got.append(s.recv(4096).decode())
    return got


@pytest.mark.parametrize("abstract", [False, True])
async def test_keepalive_sends_ready_then_watchdogs(tmp_path, monkeypatch, abstract):
    path = f"@dozor-test-{os.getpid()}-{abstract}" if abstract else str(tmp_path / "notify.sock")
    s = receiver(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    task = asyncio.create_task(sdnotify.keepalive("testing"))
    got = await asyncio.to_thread(collect, s, 3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert got[0] == "READY=1\nSTATUS=testing"
    assert got[1:] == ["WATCHDOG=1"] * 3
    assert s.recv(4096).decode() == "STOPPING=1"
    s.close()


def test_outside_systemd_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert sdnotify.watchdog_interval() is None


@pytest.mark.integration
def test_the_hub_process_notifies_ready_and_keeps_the_watchdog_fed(tmp_path, mosquitto):
    path = str(tmp_path / "notify.sock")
    s = receiver(path)
    dozor("hub", "init", str(tmp_path / "hub"), "--broker", mosquitto.url, "--listen", f"127.0.0.1:{free_port()}")
    with Procs(tmp_path) as procs:
        procs.start("hub", "hub", "run", "--config", str(tmp_path / "hub" / "hub.toml"),
                    env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        got = collect(s, 3)
    assert got[0].startswith("READY=1")
    assert got[1:4] == ["WATCHDOG=1"] * 3
    s.close()
