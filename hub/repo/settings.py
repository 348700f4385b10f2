"""``[database]`` of the hub config: where hub state lives.

    [database]
    url = "sqlite"                  # default: SQLite (WAL) files in [hub] state_dir
    # url = "postgresql://dozor@db.example:5432/dozor"   # PostgreSQL (run `dozor hub migrate` first)
    password_file = "/etc/dozor/db-password"   # or password_env = "DOZOR_DB_PASSWORD" (never in the URL)
    pool_min = 1
    pool_max = 10
    connect_timeout_s = 10
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.errors import ConfigError
from hub.repo.backend import Backend


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "sqlite"
    password_file: Path | None = None
    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    pool_min: int = Field(default=1, ge=0, le=100)
    pool_max: int = Field(default=10, ge=1, le=500)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if url == "sqlite":
            return url
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError('expected "sqlite" or postgresql://user@host:port/database')
        if parts.password is not None:
            raise ValueError("no password in the URL (it would show in logs and `ps`): use password_file or "
                             "password_env")
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError("expected postgresql://user@host:port/database (host and database name)")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("bad port in the URL") from None
        return url

    @model_validator(mode="after")
    def _one_password_source(self) -> DatabaseSettings:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        if self.pool_min > self.pool_max:
            raise ValueError("pool_min must not exceed pool_max")
        return self

    @property
    def is_postgres(self) -> bool:
        return self.url != "sqlite"

    def password(self) -> str | None:
        """Read when the store opens (so configs load anywhere); a missing source is a ConfigError."""
        if self.password_file is not None:
            try:
                return self.password_file.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"[database] password_file {self.password_file}: "
                                  f"{exc.strerror or exc}") from None
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise ConfigError(f"[database] password_env = {self.password_env!r} but that environment variable "
                                  "is not set")
            return value
        return None

    def backend(self, state_dir: Path) -> Backend:
        if not self.is_postgres:
            return Backend.sqlite(state_dir)
        return Backend.postgres(self.url, password=self.password(), state_dir=state_dir, pool_min=self.pool_min,
                                pool_max=self.pool_max, connect_timeout_s=self.connect_timeout_s)
