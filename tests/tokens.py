"""Users for tests: every token a test creates is recorded here, so the log scanner (conftest
``token_leak_scanner``) can look for each of them in everything the session logged."""

from __future__ import annotations

from pathlib import Path

from hub.identity import Role, UserStore

ISSUED: set[str] = set()
_ADMIN: dict[Path, str] = {}


def record(token: str) -> str:
    ISSUED.add(token)
    return token


def add_user(state_dir: Path, name: str, role: Role | str) -> str:
    """Create a user in a hub state dir (as `dozor users add` does) and return its token."""
    store = UserStore.in_state_dir(state_dir)
    try:
        _, token = store.add(name, role)
    finally:
        store.close()
    return record(token)


def admin_token(state_dir: Path) -> str:
    """The token of a `test-admin` user of this state dir, created on first use."""
    state_dir = Path(state_dir).resolve()
    if state_dir not in _ADMIN:
        _ADMIN[state_dir] = add_user(state_dir, "test-admin", Role.admin)
    return _ADMIN[state_dir]
