"""`dozor hub migrate` and the [database] section: one command brings a PostgreSQL (or SQLite) schema to this
version, a hub refuses an unmigrated database, a SQLite state dir from before migrations is adopted with its
rows, and the database password never shows in output, logs or errors."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from hub.app import Hub
from hub.config import load_config, parse_config
from hub.errors import ConfigError, StoreError
from hub.repo import COMPONENTS, redact
from tests.identity.helpers import DOZOR


def write_config(tmp: Path, *, database: str = "", port: int = 1883, api_port: int = 8080) -> Path:
    (tmp / "zones.json").write_text(json.dumps([{"id": "north", "name": "North", "gateways": ["gw-a"]}]))
    path = tmp / "hub.toml"
    path.write_text(f'[hub]\nstate_dir = "state"\nzones = "zones.json"\napi_port = {api_port}\n'
                    f'[mqtt]\nurl = "mqtt://127.0.0.1:{port}"\n' + database)
    return path


def pg_section(server, url: str, *, password_file: Path | None = None) -> str:
    return f'[database]\nurl = "{url}"\npassword_file = "{password_file or server.password_file}"\n'


def dozor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DOZOR, *args], capture_output=True, text=True, timeout=120, env=env)


def test_migrate_postgres_once_then_current(postgres_server, tmp_path):
    url = postgres_server.database()
    config = write_config(tmp_path, database=pg_section(postgres_server, url))
    r = dozor("hub", "migrate", "--config", str(config), "--check", "--json")
    due = json.loads(r.stdout)
    assert r.returncode == 1 and set(due["due"]) == set(COMPONENTS) and due["backend"] == "postgres"
    with pytest.raises(StoreError, match="dozor hub migrate"):  # a hub refuses an unmigrated database
        Hub(load_config(config))
    r = dozor("hub", "migrate", "--config", str(config), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {c["component"]: (c["from"], c["to"]) for c in out["components"]} == {
        name: (0, comp.version) for name, comp in COMPONENTS.items()}
    again = dozor("hub", "migrate", "--config", str(config))  # the text form; nothing left to apply
    assert again.returncode == 0 and "schema already current" in again.stdout, again.stderr
    assert dozor("hub", "migrate", "--config", str(config), "--check").returncode == 0
    tables = postgres_server.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
                                 url.rsplit("/", 1)[1]).split()
    assert {"alerts", "users", "audit_chain", "enrollment", "noise_events", "push_subs", "nodes",
            "schema_migrations"} <= set(tables)
    # the database password is in none of what the commands printed
    for res in (r, again):
        assert postgres_server.password not in res.stdout + res.stderr


def test_users_and_audit_commands_on_postgres(postgres_server, tmp_path):
    url = postgres_server.database()
    config = write_config(tmp_path, database=pg_section(postgres_server, url))
    assert dozor("hub", "migrate", "--config", str(config)).returncode == 0
    r = dozor("users", "add", "alice", "--role", "operator", "--config", str(config), "--json")
    assert r.returncode == 0, r.stderr
    r = dozor("users", "list", "--config", str(config), "--json")
    assert [u["name"] for u in json.loads(r.stdout)] == ["alice"]
    r = dozor("audit", "verify", "--config", str(config), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stdout + r.stderr
    # nothing of it went to SQLite files: PostgreSQL is the truth
    assert not list((tmp_path / "state").glob("*.sqlite"))
    rows = postgres_server.sql("SELECT action, subject FROM audit_chain ORDER BY seq", url.rsplit("/", 1)[1])
    assert "user.add|alice" in rows


def test_wrong_password_is_a_clear_error_without_the_password(postgres_server, tmp_path):
    url = postgres_server.database()
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-Secret-12345\n")
    config = write_config(tmp_path, database=pg_section(postgres_server, url, password_file=wrong))
    r = dozor("hub", "migrate", "--config", str(config), "--json")
    assert r.returncode == 1 and "cannot connect to PostgreSQL" in json.loads(r.stdout)["error"]
    assert "not-the-Secret-12345" not in r.stdout + r.stderr
    missing = write_config(tmp_path, database=pg_section(postgres_server, url, password_file=tmp_path / "nope"))
    r = dozor("hub", "migrate", "--config", str(missing))
    assert r.returncode == 2 and "password_file" in r.stderr


def test_password_env_and_config_errors(postgres_server, tmp_path, monkeypatch):
    url = postgres_server.database()
    with pytest.raises(ConfigError, match="no password in the URL"):
        parse_config({"database": {"url": url.replace("dozor@", "dozor:hunter2@")}}, base=tmp_path)
    with pytest.raises(ConfigError, match="not both"):
        parse_config({"database": {"url": url, "password_file": "a", "password_env": "B"}}, base=tmp_path)
    with pytest.raises(ConfigError, match="sqlite"):
        parse_config({"database": {"url": "mysql://x/y"}}, base=tmp_path)
    cfg = parse_config({"database": {"url": url, "password_env": "DOZOR_TEST_DB_PASSWORD"}}, base=tmp_path)
    with pytest.raises(ConfigError, match="DOZOR_TEST_DB_PASSWORD"):
        cfg.backend()
    monkeypatch.setenv("DOZOR_TEST_DB_PASSWORD", postgres_server.password)
    backend = cfg.backend()
    assert postgres_server.password not in repr(backend) and backend.where == url
    assert [c["component"] for c in backend.migrate()] == list(COMPONENTS)
    assert redact("postgresql://u:pw@h:5/d") == "postgresql://u:***@h:5/d"


def test_sqlite_state_dir_from_before_migrations_is_adopted(tmp_path):
    """A hub's state dir written by an older dozor (tables, no schema_migrations) keeps its rows and files."""
    state = tmp_path / "state"
    state.mkdir()
    with sqlite3.connect(state / "users.sqlite") as db:
        db.execute("CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, key_id TEXT NOT NULL UNIQUE, "
                   "token_hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL, "
                   "updated REAL NOT NULL)")
        db.execute("INSERT INTO users VALUES ('old', 'admin', 'k1', 'h', 0, 1, 1)")
    config = write_config(tmp_path)
    r = dozor("hub", "migrate", "--config", str(config), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["backend"] == "sqlite" and all(c["to"] == COMPONENTS[c["component"]].version
                                              for c in out["components"])
    with sqlite3.connect(state / "users.sqlite") as db:
        assert db.execute("SELECT name FROM users").fetchall() == [("old",)]
        assert db.execute("SELECT component, version FROM schema_migrations").fetchall() == [("users", 1)]
    assert {p.name for p in state.glob("*.sqlite")} == {c.file for c in COMPONENTS.values() if c.name != "push"}
    assert dozor("hub", "migrate", "--config", str(config), "--check").returncode == 0
