"""The hub's storage seam: one repository interface for all hub state, on SQLite (embedded default) or
PostgreSQL (production). See ``backend.py`` (where state lives, migrations), ``db.py`` (the interface the
stores use) and ``schema.py`` (every table, versioned)."""

from hub.repo.backend import Backend, redact
from hub.repo.db import Conflict, Database, Tx
from hub.repo.schema import COMPONENTS, Component

__all__ = ["COMPONENTS", "Backend", "Component", "Conflict", "Database", "Tx", "redact"]
