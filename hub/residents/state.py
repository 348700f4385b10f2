"""One versioned alert state per zone, two views of it, and live listeners (for SSE).

The *public* view never shows an exercise; the *tester* view shows everything. A state whose version is not
higher than the one held is dropped and counted, so a late or repeated message can never roll a zone back.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from contract.models import Mode, ZoneState, ZoneStatus
from hub.residents.models import LANGS, ResidentAlert


class Snapshot(dict[str, Any]):
    """A zone view as JSON-ready data; its SSE frame is encoded once and shared by every listener."""

    _frame: bytes | None = None

    def sse_frame(self) -> bytes:
        if self._frame is None:
            data = json.dumps(self, ensure_ascii=False, separators=(",", ":"))
            self._frame = f"id: {self['version']}\nevent: state\ndata: {data}\n\n".encode()
        return self._frame


def snapshot(state: ZoneState | None, alert: ResidentAlert | None, zone: str) -> Snapshot:
    return Snapshot(_snapshot(state, alert, zone))


def _snapshot(state: ZoneState | None, alert: ResidentAlert | None, zone: str) -> dict[str, Any]:
    """The JSON every live view renders: the zone's state plus the alert texts in both languages."""
    if state is None:
        return {"zone": zone, "version": 0, "status": ZoneStatus.IDLE.value, "mode": None, "signal": None,
                "alert": None, "headline": {}, "instruction": {}, "sent": None, "expires": None}
    out: dict[str, Any] = {
        "zone": zone, "version": state.version, "status": state.status.value,
        "mode": state.mode.value if state.mode else None,
        "signal": state.signal.value if state.signal else None,
        "alert": state.alert, "headline": dict(state.headline), "instruction": {},
        "sent": None, "expires": state.expires, "ts": state.ts,
    }
    if alert is not None and alert.id == state.alert:
        out["headline"] = {lang: alert.headline(lang) for lang in LANGS}
        out["instruction"] = {lang: alert.text(lang).instruction for lang in LANGS}
        out["sent"] = alert.sent.isoformat()
        out["msgType"] = alert.msg_type.value
        out["alertVersion"] = alert.version
    return out


@dataclass(eq=False)
class Listener:
    """One live subscriber of a zone's view. Only the newest snapshot matters, so bursts coalesce."""

    zone: str
    tester: bool
    latest: Snapshot | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, snap: Snapshot) -> None:
        self.latest = snap
        self.event.set()

    async def next(self) -> Snapshot:
        await self.event.wait()
        self.event.clear()
        assert self.latest is not None
        return self.latest


class ZoneStateStore:
    def __init__(self, zones: Iterable[str] = ()) -> None:
        self._tester: dict[str, tuple[ZoneState, ResidentAlert | None]] = {}
        self._public: dict[str, tuple[ZoneState, ResidentAlert | None]] = {}
        self._listeners: dict[str, set[Listener]] = {}
        self.known_zones: set[str] = set(zones)
        self.counters: Counter[str] = Counter()

    def apply(self, state: ZoneState, alert: ResidentAlert | None = None) -> bool:
        """Take a new zone state; returns False (and counts it) when it is not newer than the held one."""
        held = self._tester.get(state.zone)
        if held is not None and state.version <= held[0].version:
            self.counters["stale_dropped"] += 1
            return False
        self.known_zones.add(state.zone)
        self._tester[state.zone] = (state, alert)
        exercise = state.mode is Mode.EXERCISE or (alert is not None and alert.exercise)
        if not exercise:
            self._public[state.zone] = (state, alert)
        self.counters["applied"] += 1
        views: dict[bool, Snapshot] = {}  # one snapshot per view, shared by all its listeners
        for listener in tuple(self._listeners.get(state.zone, ())):
            if listener.tester or not exercise:
                snap = views.get(listener.tester)
                if snap is None:
                    snap = views[listener.tester] = self.view(state.zone, tester=listener.tester)
                listener.offer(snap)
        return True

    def view(self, zone: str, *, tester: bool = False) -> Snapshot:
        held = (self._tester if tester else self._public).get(zone)
        return snapshot(held[0] if held else None, held[1] if held else None, zone)

    def state(self, zone: str, *, tester: bool = False) -> ZoneState | None:
        held = (self._tester if tester else self._public).get(zone)
        return held[0] if held else None

    def listen(self, zone: str, *, tester: bool = False) -> Listener:
        """Register a listener whose first snapshot is the current state (current state first, always)."""
        listener = Listener(zone=zone, tester=tester)
        self._listeners.setdefault(zone, set()).add(listener)
        listener.offer(self.view(zone, tester=tester))
        return listener

    def unlisten(self, listener: Listener) -> None:
        group = self._listeners.get(listener.zone)
        if group is not None:
            group.discard(listener)
            if not group:
                del self._listeners[listener.zone]

    def listener_count(self) -> int:
        return sum(len(g) for g in self._listeners.values())


class AlertArchive:
    """Every resident message in order, for CAP rendering (Update/Cancel reference the earlier ones)."""

    def __init__(self, limit: int = 1000) -> None:
        self._messages: dict[str, ResidentAlert] = {}
        self._limit = limit

    def record(self, alert: ResidentAlert) -> bool:
        if alert.cap_identifier in self._messages:
            return False
        self._messages[alert.cap_identifier] = alert
        while len(self._messages) > self._limit:
            del self._messages[next(iter(self._messages))]
        return True

    def get(self, cap_identifier: str) -> ResidentAlert | None:
        return self._messages.get(cap_identifier)

    def earlier(self, alert: ResidentAlert) -> list[ResidentAlert]:
        return [m for m in self._messages.values() if m.id == alert.id and m.version < alert.version]

    def latest(self, n: int = 50) -> list[ResidentAlert]:
        return list(self._messages.values())[-n:][::-1]
