"""From the hub alert engine's hook arguments to a ResidentAlert.

The engine calls ``async hook(alert: AlertOut, states: list[ZoneState])`` on every alert change. This reads
the AlertOut fields by name (id, signal, mode, zones, status, version, message, created_at, expires_at,
phase_started_at, updated_at, by, acted_by, requested_by), so this package does not import the engine's models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from contract.models import Mode, Signal, ZoneState, ZoneStatus
from hub.residents.models import AlertText, MsgType, ResidentAlert

_BAD_ID = re.compile(r"[^A-Za-z0-9_.:\-]")
_STATUS = {"active": ZoneStatus.ACTIVE, "all_clear": ZoneStatus.ALL_CLEAR, "cancelled": ZoneStatus.CANCELLED}


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def from_hub_alert(alert: Any, states: Sequence[ZoneState]) -> ResidentAlert:
    """Map the engine's AlertOut (object or dict). Stopped/expired alerts map to status ``idle``."""
    status = _STATUS.get(str(_get(alert, "status", "")), ZoneStatus.IDLE)
    version = int(_get(alert, "version", 1) or 1)
    if status is ZoneStatus.CANCELLED:
        msg_type = MsgType.CANCEL
    elif status is ZoneStatus.ACTIVE and version == 1:
        msg_type = MsgType.ALERT
    else:
        msg_type = MsgType.UPDATE
    texts: dict[str, AlertText] = {}
    message = _get(alert, "message")
    if message is not None and status is ZoneStatus.ACTIVE:
        for lang in ("uk", "en"):
            text = _get(message, lang)
            if isinstance(text, str) and text.strip():
                texts[lang] = AlertText(headline=text.strip()[:160], description=text.strip()[:2000])
        if texts and len(texts) == 1:  # one language given: the other falls back to it
            only = next(iter(texts.values()))
            texts = {"uk": texts.get("uk", only), "en": texts.get("en", only)}
    when = _get(alert, "phase_started_at") or _get(alert, "updated_at") or _get(alert, "created_at")
    sent = datetime.fromtimestamp(float(when), UTC) if when else datetime.now(UTC)
    if status is ZoneStatus.ACTIVE:
        exp = _get(alert, "expires_at")
    else:
        exp = max((s.expires for s in states if s.expires is not None), default=None)
    zones = tuple(dict.fromkeys([*(_get(alert, "zones") or ()), *(s.zone for s in states)]))
    aid = _BAD_ID.sub("-", str(_get(alert, "id", "alert")))[:120] or "alert"
    if not aid[0].isalnum():
        aid = "A" + aid[:119]
    return ResidentAlert(id=aid, zones=zones, signal=Signal(_get(alert, "signal")), mode=Mode(_get(alert, "mode")),
                         status=status, msg_type=msg_type, texts=texts, sent=sent,
                         expires=datetime.fromtimestamp(float(exp), UTC) if exp else None, version=version,
                         sender_name=_sender_name(alert))


def _sender_name(alert: Any) -> str | None:
    """CAP <senderName>: the authority and the named people in their roles who ordered this message (``by``: the
    same words as the signed command's claim, e.g. "olena (operator), confirmed by marta (supervisor)")."""
    by = _get(alert, "by")
    if isinstance(by, str) and by:
        return f"dozor — {by}"[:200]
    actor = _get(alert, "acted_by") or _get(alert, "requested_by")
    name, role = _get(actor, "name"), _get(actor, "role")
    return f"dozor — {name} ({role})"[:200] if isinstance(name, str) and isinstance(role, str) else None


def alert_times(alert: Any) -> tuple[float | None, float | None]:
    """(started, ended) of the engine's alert, epoch seconds: ended is None while it is active."""
    status = str(_get(alert, "status", ""))
    started = _get(alert, "created_at")
    if status == "active":
        return started, None
    if status == "all_clear":
        return started, _get(alert, "phase_started_at") or _get(alert, "updated_at")
    if status == "expired":
        return started, _get(alert, "expires_at") or _get(alert, "updated_at")
    return started, _get(alert, "updated_at")
