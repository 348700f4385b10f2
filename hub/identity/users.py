"""The hub's users: a name, a role, a token hash, enabled or not. In the hub's state backend (hub/repo):
``users.sqlite`` in the state dir by default, or the ``users`` table in PostgreSQL.

The CLI (`dozor users ...`) opens the same file while the hub runs: every change is one short transaction,
and the hub reads the row on each request (cheap), so a disabled user or a rotated token takes effect at
once. The token itself is never stored; ``add`` and ``rotate`` return it to be shown once.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from hub.errors import HubError
from hub.identity.roles import Role, parse_role
from hub.identity.tokens import hash_token, new_token
from hub.repo import Backend, Conflict, Database
from hub.repo.schema import USERS

USERS_FILE = "users.sqlite"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class IdentityError(HubError):
    """A user operation was refused (unknown user, duplicate name, bad role); the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    key_id: str
    disabled: bool
    created: float
    updated: float

    def as_dict(self) -> dict:
        return {"name": self.name, "role": self.role.value, "disabled": self.disabled, "created": self.created,
                "updated": self.updated}


@dataclass(frozen=True)
class Credential:
    """What the authenticator needs for one key id."""

    name: str
    role: Role
    token_hash: str
    disabled: bool


def users_path(state_dir: Path) -> Path:
    return state_dir / USERS_FILE


class UserStore:
    def __init__(self, where: Path | Database) -> None:
        if isinstance(where, Database):
            self.db = where
        else:
            self.db = Backend.sqlite(where.parent).open(USERS, path=where)
            for f in (where, where.with_name(where.name + "-wal"), where.with_name(where.name + "-shm")):
                if f.exists():  # token hashes: readable by the hub's user only
                    f.chmod(0o600)
        self.path = self.db.where

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> UserStore:
        return cls(users_path(state_dir))

    @classmethod
    def in_backend(cls, backend: Backend) -> UserStore:
        """SQLite: ``users.sqlite`` in the backend's state dir (mode 0600); PostgreSQL: the ``users`` table."""
        if backend.kind == "sqlite":
            return cls.in_state_dir(backend.state_dir)
        return cls(backend.open(USERS))

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.db.query(sql, args)

    @staticmethod
    def _user(row: tuple) -> User:
        name, role, key_id, disabled, created, updated = row
        return User(name, Role(role), key_id, bool(disabled), created, updated)

    def get(self, name: str) -> User:
        rows = self._run("SELECT name, role, key_id, disabled, created, updated FROM users WHERE name=?", (name,))
        if not rows:
            raise IdentityError(f"no user {name!r} (see `dozor users list`)")
        return self._user(rows[0])

    def list(self) -> list[User]:
        rows = self._run("SELECT name, role, key_id, disabled, created, updated FROM users ORDER BY name")
        return [self._user(r) for r in rows]

    def active_count(self) -> int:
        return self._run("SELECT count(*) FROM users WHERE disabled=0")[0][0]

    def credential(self, key_id: str) -> Credential | None:
        rows = self._run("SELECT name, role, token_hash, disabled FROM users WHERE key_id=?", (key_id,))
        if not rows:
            return None
        name, role, token_hash, disabled = rows[0]
        return Credential(name, Role(role), token_hash, bool(disabled))

    def add(self, name: str, role: Role | str) -> tuple[User, str]:
        """Create a user; returns (user, token). The token is not stored and cannot be shown again."""
        if not NAME_RE.match(name):
            raise IdentityError(f"bad user name {name!r}: 1-64 letters, digits, '.', '_', '@', '-'")
        role = role if isinstance(role, Role) else _role(role)
        key_id, token = new_token()
        now = time.time()
        try:
            self.db.execute("INSERT INTO users VALUES (?,?,?,?,0,?,?)",
                            (name, role.value, key_id, hash_token(token), now, now))
        except Conflict:
            raise IdentityError(f"user {name!r} already exists (use `dozor users rotate-token {name}` "
                                "for a new token)") from None
        return self.get(name), token

    def rotate(self, name: str) -> tuple[User, str]:
        """A new token for ``name``; the old one stops working at once. Re-enables nothing."""
        self.get(name)
        key_id, token = new_token()
        self.db.execute("UPDATE users SET key_id=?, token_hash=?, updated=? WHERE name=?",
                  (key_id, hash_token(token), time.time(), name))
        return self.get(name), token

    def disable(self, name: str) -> User:
        self.get(name)
        self.db.execute("UPDATE users SET disabled=1, updated=? WHERE name=?", (time.time(), name))
        return self.get(name)

    def close(self) -> None:
        self.db.close()


def _role(text: str) -> Role:
    try:
        return parse_role(text)
    except ValueError as exc:
        raise IdentityError(str(exc)) from None
