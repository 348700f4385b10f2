"""Linked resident alerts: zone alert state, notification channels, CAP 1.2 and the resident page.

The hub's alert engine calls :meth:`ResidentNotifier.on_zone_state` with the resident-facing alert and the
new zone states, in parallel with the siren commands. Everything here renders that one versioned state.
"""

from hub.residents.errors import ResidentsError
from hub.residents.models import MsgType, ResidentAlert
from hub.residents.notifier import ResidentNotifier
from hub.residents.state import ZoneStateStore

__all__ = ["MsgType", "ResidentAlert", "ResidentNotifier", "ResidentsError", "ZoneStateStore"]
