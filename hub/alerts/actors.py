"""Who did something to an alert, as plain data (so this package needs no import of hub.identity): any object
with ``name`` and ``role`` (hub.identity.Actor) or a dict of the same. Pure."""

from __future__ import annotations

from typing import Any

SYSTEM = {"name": "hub", "role": "admin", "via": "local"}  # the hub's own clock (expiry) or a call without a user
CONFIRMER_ROLES = frozenset({"supervisor", "admin"})  # may confirm a request and break glass


def actor_doc(actor: Any) -> dict[str, str]:
    """``{"name", "role", "via"}`` from an Actor, a dict or None (the hub itself)."""
    if actor is None:
        return dict(SYSTEM)
    if isinstance(actor, dict):
        return {"name": str(actor["name"]), "role": str(actor["role"]), "via": str(actor.get("via", "token"))}
    role = getattr(actor.role, "value", actor.role)
    return {"name": str(actor.name), "role": str(role), "via": str(getattr(actor, "via", "token"))}


def label(doc: dict[str, str] | None) -> str:
    """``alice (operator)``: how an actor appears in a command's ``by`` claim, in CAP and in log lines."""
    return "-" if doc is None else f"{doc['name']} ({doc['role']})"


def same_person(a: dict[str, str] | None, b: dict[str, str] | None) -> bool:
    return a is not None and b is not None and a["name"] == b["name"]


def may_confirm(doc: dict[str, str]) -> bool:
    return doc["role"] in CONFIRMER_ROLES
