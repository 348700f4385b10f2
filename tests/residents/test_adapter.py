"""The hook the hub's alert engine calls: AlertOut-shaped objects and the engine's ZoneStates."""

from __future__ import annotations

from types import SimpleNamespace

from contract.models import Mode, Signal, ZoneState, ZoneStatus
from hub.residents import ResidentNotifier
from hub.residents.adapter import from_hub_alert
from hub.residents.models import MsgType

T = 1_790_000_000.0


def alert_out(**kw):
    """Mirrors hub.models.AlertOut's fields (read by name, so this package never imports the engine)."""
    base = dict(id="a-7f3c", signal=Signal.AIR_RAID, mode=Mode.ACTUAL, zones=["kyiv-podil"], duration_s=180,
                created_at=T, expires_at=T + 3600, status="active", message=None, version=1, phase="activate",
                phase_signal=Signal.AIR_RAID, phase_started_at=T, tracking=True, updated_at=T)
    base.update(kw)
    return SimpleNamespace(**base)


def zs(zone="kyiv-podil", version=1, status=ZoneStatus.ACTIVE, alert="a-7f3c", mode=Mode.ACTUAL, **kw):
    return ZoneState(zone=zone, version=version, status=status, alert=alert, mode=mode,
                     signal=Signal.AIR_RAID if alert else None, ts=T, **kw)


def test_mapping_of_start_all_clear_cancel_and_stop():
    a = from_hub_alert(alert_out(message=SimpleNamespace(uk="Ракетна загроза", en=None)), [zs()])
    assert (a.msg_type, a.status, a.version) == (MsgType.ALERT, ZoneStatus.ACTIVE, 1)
    assert a.headline("uk") == "Ракетна загроза" and a.headline("en") == "Ракетна загроза"
    assert a.expires.timestamp() == T + 3600
    c = from_hub_alert(alert_out(status="all_clear", version=2), [zs(version=2, status=ZoneStatus.ALL_CLEAR,
                                                                     expires=T + 600)])
    assert (c.msg_type, c.status, c.headline("en")) == (MsgType.UPDATE, ZoneStatus.ALL_CLEAR, "All clear")
    assert c.expires.timestamp() == T + 600
    x = from_hub_alert(alert_out(status="cancelled", version=2), [zs(version=2, status=ZoneStatus.CANCELLED)])
    assert (x.msg_type, x.status) == (MsgType.CANCEL, ZoneStatus.CANCELLED)
    s = from_hub_alert(alert_out(status="stopped"), [zs(version=3, status=ZoneStatus.IDLE, alert=None, mode=None)])
    assert s.status is ZoneStatus.IDLE
    odd = from_hub_alert(alert_out(id="_weird id/with,stuff"), [zs()])
    assert odd.id == "A_weird-id-with-stuff"


async def test_hook_sends_once_and_ending_or_foreign_states_notify_nobody():
    sent = []

    class Recorder:
        name = "rec"

        def __init__(self):
            from hub.residents.channels.base import ChannelStats
            self.stats = ChannelStats()

        async def deliver(self, alert, states):
            sent.append((alert.status.value, [s.zone for s in states]))

        def describe(self):
            return {"name": self.name}

        async def aclose(self):
            return None

    n = ResidentNotifier([Recorder()])
    await n.on_alert(alert_out(zones=["kyiv-podil", "kyiv-obolon"]),
                     [zs(), zs(zone="kyiv-obolon", alert="other-alert")])  # obolon is held by another alert
    await n.drain()
    assert sent == [("active", ["kyiv-podil"])]
    assert n.store.view("kyiv-obolon")["alert"] == "other-alert"  # shown as the engine computed it
    await n.on_alert(alert_out(status="all_clear", version=2), [zs(version=2, status=ZoneStatus.ALL_CLEAR)])
    await n.on_alert(alert_out(status="all_clear", version=2), [zs(version=3, status=ZoneStatus.IDLE, alert=None,
                                                                   mode=None)])
    await n.drain()
    assert sent == [("active", ["kyiv-podil"]), ("all_clear", ["kyiv-podil"])]
    assert n.store.view("kyiv-podil")["status"] == "idle"
    assert [m.cap_identifier for m in n.archive.latest()] == ["a-7f3c.v2", "a-7f3c.v1"]
