"""Roles, what each one satisfies, and the Actor (a named person in a role) that every action carries.

The table is data: ``SATISFIES[have]`` is the set of requirements a user holding role ``have`` meets.
``admin`` meets every requirement; ``supervisor`` meets ``operator`` and ``viewer``; every role meets
``viewer``. ``technician`` and ``noise-reviewer`` are specialist roles: they meet their own requirement
and ``viewer``, never ``operator`` (they cannot start alerts). docs/operations.md shows this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    supervisor = "supervisor"
    noise_reviewer = "noise-reviewer"
    technician = "technician"
    admin = "admin"


SATISFIES: dict[Role, frozenset[Role]] = {
    Role.viewer: frozenset({Role.viewer}),
    Role.operator: frozenset({Role.operator, Role.viewer}),
    Role.supervisor: frozenset({Role.supervisor, Role.operator, Role.viewer}),
    Role.noise_reviewer: frozenset({Role.noise_reviewer, Role.viewer}),
    Role.technician: frozenset({Role.technician, Role.viewer}),
    Role.admin: frozenset(Role),
}

Via = Literal["token", "oidc", "demo", "local"]  # local: the CLI on the hub machine, with access to its state dir


def satisfies(have: Role, need: Role) -> bool:
    """True when a user in role ``have`` may call something that requires ``need``."""
    return need in SATISFIES[have]


def parse_role(text: str) -> Role:
    """A role from its name; ValueError naming the valid roles otherwise."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown role {text!r}: use one of {', '.join(r.value for r in Role)}") from None


@dataclass(frozen=True)
class Actor:
    """Who did something: the user's name and the role they acted in, and how they authenticated."""

    name: str
    role: Role
    via: Via = "token"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role.value, "via": self.via}

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role.value})"


def actor_label(doc: dict | None) -> str | None:
    """``"alice (operator)"`` from an actor document (``Actor.as_dict()``), None without one."""
    if not doc:
        return None
    return f"{doc.get('name', '?')} ({doc.get('role', '?')})"[:160]
