"""What the hub does with each verified gateway message (births, heartbeats, acks) and with its own online/offline
verdicts: update the registry, the field-node records and the alert engine, and write fleet points into the
ingest spool. A mixin of ``hub.app.Hub`` (split from it along that seam); every handler is sync, called from the
MQTT message loop, and never raises for one bad message.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from contract.models import Ack, GatewayState, Heartbeat, ZoneState
from hub.grafana import points
from hub.models import AlertOut
from hub.registry import OFFLINE, ONLINE

if TYPE_CHECKING:
    from hub.alerts import AlertEngine
    from hub.ingest.receipts import Receipts
    from hub.ingest.service import IngestService
    from hub.metrics import HubMetrics
    from hub.nodes import NodeRegistry
    from hub.registry import Registry
    from hub.zones import Zones

log = logging.getLogger("hub.app")


class GatewayEvents:
    registry: Registry
    nodes: NodeRegistry
    engine: AlertEngine
    metrics: HubMetrics
    ingest: IngestService | None
    receipts: Receipts | None
    zones: Zones
    _home_zone: dict[str, str]
    _verdicts: dict[str, Any]

    # zones of gateways (the zone tag of readings, AQI and fleet points)
    def _home_zones(self) -> dict[str, str]:
        """The first zone in the zones file that lists each gateway (then: that lists one of its devices)."""
        home: dict[str, str] = {}
        for zone in self.zones:
            for gw in zone.gateways:
                home.setdefault(gw, zone.id)
        for zone in self.zones:
            for ref in zone.devices:
                home.setdefault(ref.split("/", 1)[0], zone.id)
        return home

    def zone_of(self, gateway: str) -> str | None:
        """GatewayState.zone from the gateway's birth, else the zones file."""
        rec = self.registry.gateways.get(gateway)
        if rec is not None and rec.zone:
            return rec.zone
        return self._home_zone.get(gateway)

    def _emit(self, make) -> None:
        """Fleet/alert points into the ingest spool; a bad point is logged and counted, never raised."""
        if self.ingest is None:
            return
        try:
            lines = make()
        except Exception:  # noqa: BLE001 - a point we cannot write must not break state tracking
            self.ingest.ingest.counters["rejected_points"] += 1
            log.exception("cannot write a fleet/alert point")
            return
        self.ingest.add_lines(lines if isinstance(lines, list) else [lines])

    # handlers (sync, called from the MQTT message loop)
    def _on_state(self, msg) -> None:
        assert isinstance(msg, GatewayState)
        self.registry.on_state(msg)
        rec = self.registry.gateways.get(msg.gateway)
        if rec is not None and rec.session == msg.session:  # not a stale state of an older session
            if self.receipts is not None and msg.state == "online":  # this hub receipts: a restarted gateway
                self.receipts.hello(msg.gateway)  # re-sends what it holds without one (gateway/receipts.py)
            self._nodes(lambda: self.nodes.on_birth(msg))
            self._emit(lambda: points.gateway_state_line(msg, zone=self.zone_of(msg.gateway)))

    def _on_heartbeat(self, msg) -> None:
        assert isinstance(msg, Heartbeat)
        self.registry.on_heartbeat(msg)
        rec = self.registry.gateways.get(msg.gateway)
        if rec is not None and rec.session == msg.session:
            self._nodes(lambda: self.nodes.on_heartbeat(msg, self.registry.devices_of(msg.gateway)))
            self._emit(lambda: points.heartbeat_lines(msg, zone=self.zone_of(msg.gateway)))

    def _nodes(self, update) -> None:
        """Field-node registry updates from gateway messages: a bug there is logged and counted, never raised."""
        try:
            update()
        except Exception:  # noqa: BLE001 - must not break gateway state tracking
            self.metrics.store_errors.inc()
            log.exception("cannot update the node registry")

    def _on_ack(self, msg) -> None:
        assert isinstance(msg, Ack)
        self.engine.on_ack(msg)
        self._emit(lambda: points.ack_line(msg))

    def _on_gateway_change(self, gateway: str, state: str) -> None:
        """The hub's own verdicts (births and last-wills are written from the messages themselves)."""
        rec = self.registry.gateways.get(gateway)
        if rec is None or rec.reason not in ("heartbeat timeout", "heartbeat") or rec.state != state:
            return
        if (state == OFFLINE) != (rec.reason == "heartbeat timeout") or state not in (ONLINE, OFFLINE):
            return
        if self._verdicts.get(gateway) == rec.since:  # listeners also run on persists without a change
            return
        self._verdicts[gateway] = rec.since
        self._emit(lambda: points.gateway_online_line(
            gateway, state == ONLINE, time.time(), session=rec.session, zone=self.zone_of(gateway),
            cause=rec.reason.replace(" ", "_")))

    async def _zone_points(self, _alert: AlertOut, states: list[ZoneState]) -> None:
        self._emit(lambda: [points.zone_state_line(s) for s in states])
