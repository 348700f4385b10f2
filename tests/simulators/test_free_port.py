"""free_port: the ports tests hand to servers must not be taken before the server binds."""

from __future__ import annotations

import socket
import subprocess
import sys

from simulators import brokers


def test_ports_are_below_the_ephemeral_range_and_distinct_across_processes():
    code = "from simulators.brokers import free_port; print(' '.join(str(free_port()) for _ in range(40)))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    ports = [int(p) for proc in procs for p in proc.communicate()[0].split()]
    ports += [brokers.free_port() for _ in range(40)]
    assert len(ports) == 200
    assert len(set(ports)) == 200, "two callers got the same port"
    low = brokers._ephemeral_low()
    assert all(brokers.PORT_FLOOR <= p < low for p in ports)


def test_a_port_something_holds_is_skipped():
    nxt = brokers.free_port() + 1  # the counter's next port, unless a parallel caller moves it meanwhile
    with socket.socket() as held:
        held.bind(("127.0.0.1", nxt))
        held.listen()
        got = brokers.free_port()
    assert got != nxt
    with socket.socket() as s:
        s.bind(("127.0.0.1", got))  # and the one handed out is free
