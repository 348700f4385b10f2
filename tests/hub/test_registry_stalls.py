"""Heartbeat timeouts and the hub's own stalls: while the hub's event loop does not run (a loaded machine, a long
GC), gateways' heartbeats wait unread, so that time is not their silence. A real SQLite hub store; the clock is
the registry's injected monotonic clock."""

from __future__ import annotations

from contract.models import GatewayState, Heartbeat
from hub.metrics import HubMetrics
from hub.registry import Registry
from hub.store import Store


class Clock:
    t = 1000.0

    def __call__(self) -> float:
        return self.t


def registry(tmp_path) -> tuple[Registry, Clock]:
    clock = Clock()
    reg = Registry(Store(tmp_path / "hub.sqlite"), HubMetrics(), mono=clock)
    reg.on_state(GatewayState(gateway="gw-1", state="online", session=1, ts=0.0, heartbeat_s=5.0))
    reg.on_heartbeat(Heartbeat(gateway="gw-1", session=1, seq=1, ts=0.0, uptime_s=1.0))
    return reg, clock


def tick(reg: Registry, clock: Clock, until: float, every: float = 0.25) -> list[str]:
    lost = []
    while clock.t + every <= until + 1e-9:
        clock.t += every
        lost += reg.check_timeouts(every)
    return lost


def test_a_silent_gateway_times_out_after_twice_its_heartbeat(tmp_path):
    reg, clock = registry(tmp_path)
    assert tick(reg, clock, 1009.75) == []
    assert tick(reg, clock, 1010.25) == ["gw-1"]
    assert reg.state_of("gw-1") == "offline"


def test_the_hubs_own_stall_is_not_the_gateways_silence(tmp_path):
    reg, clock = registry(tmp_path)
    tick(reg, clock, 1001.0)
    clock.t += 12.0  # the loop did not run for 12 s: the gateway's heartbeats wait in the socket
    assert reg.check_timeouts(0.25) == []
    assert reg.state_of("gw-1") == "online" and reg.metrics.registry.get_sample_value("dozor_hub_loop_stalls_total") == 1
    # still silent afterwards: it times out 2 x heartbeat_s of the hub's *running* time after the last heartbeat
    assert tick(reg, clock, 1013.0 + 8.0) == []
    assert tick(reg, clock, 1013.0 + 9.5) == ["gw-1"]


def test_a_heartbeat_after_the_stall_keeps_it_online(tmp_path):
    reg, clock = registry(tmp_path)
    tick(reg, clock, 1000.5)
    clock.t += 30.0
    assert reg.check_timeouts(0.25) == []
    reg.on_heartbeat(Heartbeat(gateway="gw-1", session=1, seq=2, ts=0.0, uptime_s=2.0))
    assert tick(reg, clock, clock.t + 9.75) == [] and reg.state_of("gw-1") == "online"
