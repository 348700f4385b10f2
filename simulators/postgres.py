"""A real PostgreSQL for tests and benchmarks: Debian's ``postgresql`` package, a throwaway cluster bound to
127.0.0.1 on a free port.

``initdb`` refuses to run as root, so when the tests run as root the cluster's folder is owned by the
``postgres`` user and both ``initdb`` and the server run as that user (``Popen(user=...)``, no shell, no sudo).
Local socket connections are trusted (only the cluster's own folder holds the socket); TCP connections need a
password (scram-sha-256). ``start()`` creates the role ``dozor`` with a random password, which is written to
``password_file`` (mode 0600) for the hub's ``[database] password_file``; ``database(name)`` makes a fresh,
empty database owned by that role, so each test gets its own. ``close()`` stops the server and removes the folder.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from simulators.brokers import BrokerError, ChildServer, free_port

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
ROLE = "dozor"


class PostgresError(BrokerError):
    """The cluster could not be created or started."""


def _bin(name: str) -> str:
    for d in PG_BIN_DIRS:
        if (d / name).exists():
            return str(d / name)
    found = shutil.which(name)
    if not found:
        raise PostgresError(f"{name} is not installed: run `./run deps` (apt-get install postgresql)")
    return found


class Postgres(ChildServer):
    stop_timeout_s = 15.0

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="dozor-pg-"))
        self.data = self.dir / "data"
        self.password = secrets.token_urlsafe(18)
        self.password_file = self.dir / "dozor-db-password"
        self.log_path = self.dir / "postgres.log"
        self.proc: subprocess.Popen | None = None
        self._user: str | None = "postgres" if os.geteuid() == 0 else None
        self._initdb()

    # ------------------------------------------------------------ cluster
    def _as_owner(self) -> dict:
        return {"user": self._user, "group": pwd.getpwnam(self._user).pw_gid} if self._user else {}

    def _initdb(self) -> None:
        self.dir.chmod(0o755)
        self.password_file.write_text(self.password + "\n")
        self.password_file.chmod(0o600)
        if self._user:
            entry = pwd.getpwnam(self._user)
            self.data.mkdir(mode=0o700)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        out = subprocess.run([_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                              "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, **self._as_owner())
        if out.returncode != 0:
            raise PostgresError(f"initdb failed ({out.returncode}): {out.stderr[-2000:]}")

    def start(self, timeout: float = 30.0) -> Postgres:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        if self._user:
            os.chown(self.log_path, pwd.getpwnam(self._user).pw_uid, -1)
        self.proc = subprocess.Popen(
            [_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.data),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200",
             "-c", "shared_buffers=32MB"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, **self._as_owner())
        log.close()
        try:
            self._wait_ready(timeout)
            self._psql(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') THEN "
                       f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{self.password}'; END IF; END $$;")
        except PostgresError:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise PostgresError(f"postgres exited with {self.proc.returncode}: {self.log_tail()}")
            ok = subprocess.run([_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                                capture_output=True, stdin=subprocess.DEVNULL)
            if ok.returncode == 0:
                return
            time.sleep(0.1)
        raise PostgresError(f"postgres not ready on port {self.port} after {timeout}s: {self.log_tail()}")

    def _psql(self, sql: str, db: str = "postgres") -> str:
        """Run SQL as the superuser over the cluster's private socket."""
        out = subprocess.run([_bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.data),
                              "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL, **self._as_owner())
        if out.returncode != 0:
            raise PostgresError(f"psql failed: {out.stderr.strip()}")
        return out.stdout

    def log_tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-n:]
        return ""

    # ------------------------------------------------------------ what tests use
    def url(self, database: str = ROLE) -> str:
        """The connection URL without the password (the hub reads that from ``password_file``)."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def database(self, name: str | None = None) -> str:
        """A fresh, empty database owned by ``dozor``; returns its URL (without the password)."""
        name = name or f"t_{secrets.token_hex(6)}"
        self._psql(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return self.url(name)

    def sql(self, sql: str, database: str) -> str:
        """Run SQL as the superuser (tests inspect or tamper with the stored rows)."""
        return self._psql(sql, database)

    def terminate_connections(self, database: str) -> None:
        """Drop every client connection to ``database`` (a network blip, a failover)."""
        self._psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' "
                   "AND pid <> pg_backend_pid()")
