"""One versioned alert state per zone, two views of it, and live listeners (for SSE).

The *tester* view shows everything. The *public* view never shows an exercise's content, but while sirens
sound for an exercise it shows the notice "Exercise — sirens are being tested, no danger" (status
``exercise``), so a resident who hears sirens never reads "no alert"; an actual alert still active in the
zone outranks an exercise. A state whose version is not higher than the one held is dropped and counted, so a
late or repeated message can never roll a zone back. ``decorate`` (set by the web layer) adds the rendered
page fragments to each snapshot once, so every listener of a view shares them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from contract.models import Mode, Signal, ZoneState, ZoneStatus
from hub.residents.guidance import DEFAULTS
from hub.residents.models import LANGS, ResidentAlert

EXERCISE_STATUS = "exercise"  # the public view of an exercise while its sirens sound


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


def sounds(state: ZoneState) -> bool:
    """Sirens sound for this state: an active or all-clear phase of anything but a silent test."""
    return state.status in (ZoneStatus.ACTIVE, ZoneStatus.ALL_CLEAR) and state.signal is not Signal.SILENT_TEST


def exercise_notice(state: ZoneState) -> Snapshot:
    """What a non-tester sees while sirens sound for an exercise: no content of the exercise, no danger."""
    g = DEFAULTS["exercise"]
    return Snapshot({"zone": state.zone, "version": state.version, "status": EXERCISE_STATUS,
                     "mode": Mode.EXERCISE.value, "signal": None, "alert": None, "headline": dict(g.headline),
                     "instruction": {}, "sent": None, "expires": state.expires, "ts": state.ts})


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
    MAX_TIMES = 1000  # alerts whose start/end the page can show: bounded, the oldest forgotten first

    def __init__(self, zones: Iterable[str] = (), clock: Callable[[], float] = time.time) -> None:
        self._tester: dict[str, tuple[ZoneState, ResidentAlert | None]] = {}
        self._public: dict[str, tuple[ZoneState, ResidentAlert | None]] = {}
        self._notice: dict[str, ZoneState] = {}  # zone -> the sounding exercise the public sees a notice of
        self.times: dict[str, tuple[float | None, float | None]] = {}  # alert id -> (started, ended); see set_times
        self.decorate: Callable[[Snapshot, bool], None] | None = None
        self.watchers: list[Callable[[], None]] = []  # called after every applied state
        self.clock = clock
        self.view_ttl_s = 30.0
        self._views: dict[tuple[str, bool], tuple[float, Snapshot]] = {}
        self._listeners: dict[str, set[Listener]] = {}
        self.known_zones: set[str] = set(zones)
        self.counters: Counter[str] = Counter()

    def set_times(self, alert_id: str, times: tuple[float | None, float | None], *, keep: bool = False) -> None:
        """Remember when an alert started and ended (``keep``: only if not known yet); at most ``MAX_TIMES``."""
        if keep and alert_id in self.times:
            return
        self.times.pop(alert_id, None)
        self.times[alert_id] = times
        while len(self.times) > self.MAX_TIMES:
            del self.times[next(iter(self.times))]

    def apply(self, state: ZoneState, alert: ResidentAlert | None = None) -> bool:
        """Take a new zone state; returns False (and counts it) when it is not newer than the held one."""
        held = self._tester.get(state.zone)
        if held is not None and state.version <= held[0].version:
            self.counters["stale_dropped"] += 1
            return False
        self.known_zones.add(state.zone)
        self._tester[state.zone] = (state, alert)
        exercise = state.mode is Mode.EXERCISE or (alert is not None and alert.exercise)
        public_changed = True
        if not exercise:
            self._public[state.zone] = (state, alert)
            self._notice.pop(state.zone, None)
        elif sounds(state) and not self._actual_active(state.zone):
            self._notice[state.zone] = state
        else:  # a silent exercise, or an actual alert outranks it: the public view stays as it is
            public_changed = self._notice.pop(state.zone, None) is not None
        self.counters["applied"] += 1
        for watch in self.watchers:
            watch()
        self._offer(state.zone, public_changed)
        return True

    def _actual_active(self, zone: str) -> bool:
        held = self._public.get(zone)
        if held is None or held[0].status is not ZoneStatus.ACTIVE:
            return False
        return held[0].expires is None or self.clock() < held[0].expires

    def retire(self, alert_id: str, zones: Iterable[str], ended: float | None = None) -> None:
        """An actual alert ended while an exercise held its zones: its public state must not linger."""
        for zone in zones:
            held = self._public.get(zone)
            if held is None or held[0].alert != alert_id or held[0].status is not ZoneStatus.ACTIVE:
                continue
            st = held[0]
            self._public[zone] = (st.model_copy(update={"status": ZoneStatus.IDLE, "alert": None, "signal": None,
                                                        "mode": None, "headline": {}, "expires": None}), None)
            tester = self._tester.get(zone)
            if tester is not None and tester[0].mode is Mode.EXERCISE and sounds(tester[0]):
                self._notice[zone] = tester[0]
            self.counters["retired"] += 1
            self._offer(zone, True)

    def _offer(self, zone: str, public_changed: bool) -> None:
        self._views.pop((zone, True), None)
        self._views.pop((zone, False), None)
        views: dict[bool, Snapshot] = {}  # one snapshot per view, shared by all its listeners
        for listener in tuple(self._listeners.get(zone, ())):
            if listener.tester or public_changed:
                snap = views.get(listener.tester)
                if snap is None:
                    snap = views[listener.tester] = self.view(zone, tester=listener.tester)
                listener.offer(snap)

    def view(self, zone: str, *, tester: bool = False) -> Snapshot:
        """The zone view; decorated snapshots are cached (per zone and view) until the zone changes or for
        ``view_ttl_s``, so a crowd connecting at once costs one rendering, not one each."""
        key = (zone, tester)
        hit = self._views.get(key)
        if hit is not None and self.clock() - hit[0] < self.view_ttl_s:
            return hit[1]
        snap = self._build(zone, tester)
        self._views[key] = (self.clock(), snap)
        return snap

    def _build(self, zone: str, tester: bool) -> Snapshot:
        notice = None if tester else self._notice.get(zone)
        if notice is not None:
            snap = exercise_notice(notice)
        else:
            held = (self._tester if tester else self._public).get(zone)
            snap = snapshot(held[0] if held else None, held[1] if held else None, zone)
        started, ended = self.times.get(snap.get("alert") or "", (None, None))
        snap["started"], snap["ended"] = started, ended
        snap["tester"] = tester
        if self.decorate is not None:
            self.decorate(snap, tester)
        return snap

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

    def __len__(self) -> int:
        return len(self._messages)

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
