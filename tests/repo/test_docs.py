"""The PostgreSQL commands and config shown in docs/operations.md ("Hub state: SQLite or PostgreSQL"), run as
written (the deployment folder, database URL and password file of this test substituted) against a real
PostgreSQL, a real broker and a real hub process."""

from __future__ import annotations

import re
import shlex
import subprocess

from simulators.brokers import free_port, wait_port
from tests.identity.helpers import DOZOR
from tests.identity.test_docs import ROOT, commands
from tests.repo.test_migrate import dozor, write_config
from tests.tokens import record

HEADING = "### Hub state: SQLite or PostgreSQL"


def toml_block() -> str:
    text = (ROOT / "docs/operations.md").read_text()
    section = text[text.index(HEADING):]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


def test_documented_postgres_setup_runs(postgres_server, mosquitto, tmp_path):
    deploy = tmp_path / "etc-dozor"
    deploy.mkdir()
    url = postgres_server.database()
    port = free_port()
    (deploy / "db-password").write_text(postgres_server.password + "\n")
    block = toml_block().replace("postgresql://dozor@127.0.0.1:5432/dozor", url).replace("/etc/dozor", str(deploy))
    assert block != toml_block()
    config = write_config(deploy, port=mosquitto.port, api_port=port, database=block)
    lines = [c.replace("/etc/dozor", str(deploy)) for c in commands("docs/operations.md", HEADING)]
    assert [shlex.split(c)[1:3] for c in lines] == [["hub", "migrate"], ["hub", "migrate"], ["users", "add"],
                                                   ["hub", "run"]]
    hub = None
    try:
        for line in lines:
            args = shlex.split(line)[1:]
            if args[:2] == ["hub", "run"]:
                hub = subprocess.Popen([DOZOR, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                wait_port(port, timeout=30)
                continue
            r = dozor(*args)
            expected = 1 if "--check" in args else 0  # before the first migration, --check says one is due
            assert r.returncode == expected, (line, r.stdout, r.stderr)
            if args[:2] == ["users", "add"]:
                record(r.stdout.strip())
        assert hub is not None and hub.poll() is None
        r = dozor("hub", "migrate", "--config", str(config), "--check")
        assert r.returncode == 0 and "schema is current" in r.stdout
    finally:
        if hub is not None:
            hub.terminate()
            hub.wait(20)
