"""The alert engine package (see engine.py for the behaviour, lifecycle.py for the state machine).

Public names other modules use are importable from here: ``AlertEngine``, ``AlertHook``, ``percentile``.
"""

from hub.alerts.base import AlertHook, Publish, PublishNowait
from hub.alerts.engine import AlertEngine
from hub.alerts.lifecycle import Facts, IllegalTransition, Op, Phase, State, next_state
from hub.alerts.model import Alert, CmdRef, Track, new_alert_id, percentile, reason_label

__all__ = ["Alert", "AlertEngine", "AlertHook", "CmdRef", "Facts", "IllegalTransition", "Op", "Phase", "Publish",
           "PublishNowait", "State", "Track", "new_alert_id", "next_state", "percentile", "reason_label"]
