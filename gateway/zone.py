"""The hub's public zone state, as the gateway sees it (``dozor/v1/zone/{zone}/state``, retained).

The uplink subscribes on every (re)connect and hands each payload to ``ZoneWatch.on_payload``, which runs
inside the MQTT message callback: it never raises. A payload is decoded with the contract; anything else
is counted and dropped, and the last good state is kept:

- ``zone_state_empty``      an empty payload (someone cleared the retained message)
- ``zone_state_malformed``  not a valid ``ZoneState`` (bad JSON, wrong fields, too large)
- ``zone_state_wrong_zone`` a valid state for another zone than the topic's
- ``zone_state_stale``      a lower ``version`` than the one we hold (a higher version replaces a lower)
- ``zone_state_repeats``    the same version again (the retained copy after a reconnect)

Accepted states (``zone_state_accepted``) go to every listener (each microphone's analyzer); a listener
that fails is counted (``zone_state_listener_errors``), the others still get the state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from contract.errors import MalformedMessage
from contract.models import ZoneState, decode
from gateway.counters import Counters


class ZoneWatch:
    def __init__(self, zone: str, *, counters: Counters | None = None,
                 log: logging.Logger | logging.LoggerAdapter | None = None) -> None:
        self.zone = zone
        self.counters = counters if counters is not None else Counters()
        self.log = log or logging.getLogger("dozor.gateway.zone")
        self.state: ZoneState | None = None
        self.listeners: list[Callable[[ZoneState], object]] = []

    def on_payload(self, payload: bytes) -> None:
        """Message callback for the zone topic: never raises."""
        try:
            self._take(payload)
        except Exception:  # noqa: BLE001 - a bug here must not take the uplink down
            self.counters.inc("zone_state_errors")
            self.log.exception("zone state handling failed")

    def _take(self, payload: bytes) -> None:
        if not payload:
            self.counters.inc("zone_state_empty")
            return
        try:
            state = decode(ZoneState, payload)
        except MalformedMessage as exc:
            self.counters.inc("zone_state_malformed")
            self.log.warning("zone state for %s dropped: %s", self.zone, exc)
            return
        if state.zone != self.zone:
            self.counters.inc("zone_state_wrong_zone")
            self.log.warning("zone state for %s arrived on the topic of %s; dropped", state.zone, self.zone)
            return
        held = self.state
        if held is not None and state.version < held.version:
            self.counters.inc("zone_state_stale")
            return
        if held is not None and state.version == held.version:
            self.counters.inc("zone_state_repeats")
            return
        self.state = state
        self.counters.inc("zone_state_accepted")
        self.log.info("zone %s: %s (version %d, signal %s)", state.zone, state.status.value, state.version,
                      state.signal.value if state.signal else "-")
        for listener in list(self.listeners):
            try:
                listener(state)
            except Exception:  # noqa: BLE001
                self.counters.inc("zone_state_listener_errors")
                self.log.exception("zone state listener %r failed", listener)
