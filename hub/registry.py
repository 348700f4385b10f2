"""The fleet as the hub knows it: gateways and devices from births, online/offline from the retained
last-will and from heartbeat timeouts (2 x heartbeat_s), device states and faults from heartbeats.

States with a lower session than the known one are ignored, so a late last-will of an old connection
never marks a re-born gateway offline. The registry is persisted; after a hub restart every gateway is
``unknown`` until its retained state arrives again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from contract.models import DeviceInfo, DeviceKind, DeviceStatus, GatewayState, Heartbeat, OutboxStats
from hub.metrics import HubMetrics
from hub.store import Store

log = logging.getLogger(__name__)

ONLINE, OFFLINE, UNKNOWN = "online", "offline", "unknown"
STALL_S = 1.0  # the registry's check ran this much later than due: the hub's loop stalled
STALL_MEMORY_S = 600.0  # a stall is discounted from silences that began before it, for this long
Listener = Callable[[str, str], None]  # (gateway, new state)


@dataclass(slots=True)
class GatewayRecord:
    id: str
    state: str = UNKNOWN
    session: int = -1
    heartbeat_s: float = 10.0
    sw: str = ""
    zone: str | None = None
    keys: tuple[str, ...] = ()
    devices: dict[str, DeviceInfo] = field(default_factory=dict)
    status: dict[str, DeviceStatus] = field(default_factory=dict)
    outbox: OutboxStats | None = None
    counters: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    since: float = 0.0  # wall clock of the last state change
    last_seen_mono: float | None = None  # birth or heartbeat, hub monotonic clock
    last_heartbeat: float | None = None  # wall clock
    heartbeat_seq: int = -1

    def persist_doc(self) -> dict:
        return {"id": self.id, "session": self.session, "heartbeat_s": self.heartbeat_s, "sw": self.sw,
                "zone": self.zone, "keys": list(self.keys), "state": self.state, "since": self.since,
                "devices": [d.model_dump(mode="json", exclude_none=True) for d in self.devices.values()]}

    def device_kind(self, device: str) -> DeviceKind | None:
        info = self.devices.get(device)
        return info.kind if info else None


class Registry:
    def __init__(self, store: Store, metrics: HubMetrics, *, mono: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.metrics = metrics
        self.mono = mono
        # Stalls of the hub's own loop (time when each ended, its length): a gateway's heartbeats wait unread in the
        # socket while the hub does not run, so that time is not the gateway's silence (check_timeouts).
        self._last_check: float | None = None
        self._stalls: list[tuple[float, float]] = []
        self.gateways: dict[str, GatewayRecord] = {}
        self.listeners: list[Listener] = []
        self.reload()

    def reload(self) -> None:
        """Read the gateways from the store again, as at a start (every one ``unknown`` until it is heard)."""
        self.gateways = {}
        for doc in self.store.load_gateways():
            try:
                self._load(doc)
            except (KeyError, TypeError, ValueError) as exc:  # a damaged row must not keep the hub down
                self.metrics.store_errors.inc()
                log.error("skipping unreadable gateway %s in the hub state: %r", doc.get("id"), exc)
        self._gauge()

    def mirror(self, docs: list[dict]) -> None:
        """A follower hub: the leader's view of the fleet as it last wrote it (states included)."""
        self.gateways = {}
        for doc in docs:
            try:
                self._load(doc)
            except (KeyError, TypeError, ValueError):
                self.metrics.store_errors.inc()
                continue
            rec = self.gateways[doc["id"]]
            state = doc.get("state", UNKNOWN)
            rec.state = state if state in (ONLINE, OFFLINE) else UNKNOWN
            rec.reason = "as the leader hub wrote it"
        self._gauge()

    def _load(self, doc: dict) -> None:
        rec = GatewayRecord(id=doc["id"], session=int(doc.get("session", -1)),
                            heartbeat_s=float(doc.get("heartbeat_s", 10.0)), sw=doc.get("sw", ""),
                            zone=doc.get("zone"), keys=tuple(doc.get("keys", ())), since=doc.get("since", 0.0),
                            reason="hub restarted")
        for dev in doc.get("devices", ()):
            info = DeviceInfo.model_validate(dev)
            rec.devices[info.id] = info
        self.gateways[rec.id] = rec

    # ------------------------------------------------------------ queries
    def devices_of(self, gateway: str) -> dict[str, DeviceKind | None]:
        rec = self.gateways.get(gateway)
        return {d.id: d.kind for d in rec.devices.values()} if rec else {}

    def is_online(self, gateway: str) -> bool:
        rec = self.gateways.get(gateway)
        return rec is not None and rec.state == ONLINE

    def state_of(self, gateway: str) -> str:
        rec = self.gateways.get(gateway)
        return rec.state if rec else UNKNOWN

    # ------------------------------------------------------------ inputs (sync, never raise)
    def on_state(self, msg: GatewayState) -> None:
        rec = self.gateways.get(msg.gateway) or GatewayRecord(id=msg.gateway)
        self.gateways[msg.gateway] = rec
        if msg.session < rec.session:
            self.metrics.stale_states.inc()
            log.info("ignoring %s state of %s: session %d < known %d", msg.state, msg.gateway, msg.session,
                     rec.session)
            return
        newer = msg.session > rec.session
        rec.session = msg.session
        if msg.state == "online":
            rec.heartbeat_s = msg.heartbeat_s
            rec.sw, rec.zone, rec.keys = msg.sw, msg.zone, msg.keys
            rec.devices = {d.id: d for d in msg.devices}
            if newer:
                rec.status = {}
                rec.heartbeat_seq = -1
            rec.last_seen_mono = self.mono()
            self._set(rec, ONLINE, "birth", force_persist=True)
        else:
            self._set(rec, OFFLINE, "last-will", force_persist=newer)

    def on_heartbeat(self, msg: Heartbeat) -> None:
        rec = self.gateways.get(msg.gateway)
        if rec is None:
            rec = self.gateways[msg.gateway] = GatewayRecord(id=msg.gateway)
        if msg.session < rec.session:
            self.metrics.stale_states.inc()
            return
        if msg.session > rec.session:
            rec.session = msg.session
            rec.heartbeat_seq = -1
        rec.heartbeat_seq = max(rec.heartbeat_seq, msg.seq)
        rec.last_seen_mono = self.mono()
        rec.last_heartbeat = time.time()
        rec.status = {d.id: d for d in msg.devices}
        rec.outbox = msg.outbox
        rec.counters = dict(msg.counters)
        if rec.state != ONLINE:
            self._set(rec, ONLINE, "heartbeat")

    def reset_session(self, gateway: str) -> None:
        """A new enrollment epoch (re-provisioned, or ``dozor gateways reset``): the next verified state or
        heartbeat sets the session, whatever its number (hub.gwtrust)."""
        rec = self.gateways.get(gateway)
        if rec is not None:
            rec.session, rec.heartbeat_seq = -1, -1
            self.store.put_gateway(rec.id, rec.persist_doc())
            self.store.audit("gateway", {"gateway": rec.id, "state": rec.state, "reason": "epoch reset"})

    def check_timeouts(self, interval_s: float = 0.25) -> list[str]:
        """Mark offline every online gateway silent for more than 2 x heartbeat_s. Returns their ids.

        Called every ``interval_s``; a longer gap since the last call is a stall of the hub's own event loop
        (a loaded machine, a long GC), and the stalled time is not counted as any gateway's silence: what the
        gateways sent meanwhile is still unread. Stalls are remembered ``STALL_MEMORY_S``."""
        now = self.mono()
        if self._last_check is not None and (stalled := now - self._last_check - interval_s) > STALL_S:
            self._stalls.append((now, stalled))
            self.metrics.loop_stalls.inc()
            log.warning("the hub's loop did not run for %.1f s: heartbeat timeouts wait for that long", stalled)
        self._last_check = now
        if self._stalls and self._stalls[0][0] < now - STALL_MEMORY_S:
            self._stalls = [s for s in self._stalls if s[0] >= now - STALL_MEMORY_S]
        lost = [rec for rec in self.gateways.values() if rec.state == ONLINE and rec.last_seen_mono is not None
                and self._silence(rec.last_seen_mono, now) > 2 * rec.heartbeat_s]
        for rec in lost:
            self._set(rec, OFFLINE, "heartbeat timeout")
        return [rec.id for rec in lost]

    def _silence(self, since: float, now: float) -> float:
        """``now - since``, less the hub's own stalls in that time."""
        return now - since - sum(min(length, end - since) for end, length in self._stalls if end > since)

    async def run(self, interval_s: float = 0.25) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.check_timeouts(interval_s)

    # ------------------------------------------------------------ internals
    def _set(self, rec: GatewayRecord, state: str, reason: str, *, force_persist: bool = False) -> None:
        changed = rec.state != state
        if changed:
            log.log(logging.WARNING if state == OFFLINE else logging.INFO, "gateway %s %s (%s, session %d)",
                    rec.id, state, reason, rec.session)
            rec.state, rec.reason, rec.since = state, reason, time.time()
            self.metrics.gateway_events.labels(state, reason).inc()
            self._gauge()
        if changed or force_persist:
            self.store.put_gateway(rec.id, rec.persist_doc())
            self.store.audit("gateway", {"gateway": rec.id, "state": state, "reason": reason,
                                         "session": rec.session})
            for listener in self.listeners:
                try:
                    listener(rec.id, state)
                except Exception:  # a listener bug must not break state tracking
                    log.exception("gateway listener failed for %s", rec.id)

    def _gauge(self) -> None:
        counts = {ONLINE: 0, OFFLINE: 0, UNKNOWN: 0}
        for rec in self.gateways.values():
            counts[rec.state] += 1
        for state, n in counts.items():
            self.metrics.gateways.labels(state).set(n)
