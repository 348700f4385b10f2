"""Shared fixtures: real servers on free loopback ports, started here and stopped afterwards."""

from __future__ import annotations

import os

import pytest

from simulators.brokers import Mosquitto
from tests import tokens
from tests.leaks import LeakScanner

# Rich fixes a console's width when it is created (at the first in-process CLI call) from COLUMNS; pytest-xdist
# workers run with COLUMNS=80, which cut table cells that tests look for. One wide width for every runner.
os.environ["COLUMNS"] = "200"


@pytest.fixture
def mosquitto():
    """A fresh real Mosquitto broker for one test (restartable on the same port)."""
    with Mosquitto() as broker:
        yield broker


@pytest.fixture(scope="module")
def shared_mosquitto():
    with Mosquitto() as broker:
        yield broker


@pytest.fixture
def token_leak_scanner(caplog):
    """Fails the test if any token issued in this session (tests/tokens.py) shows up in what the test logged:
    caplog (in-process), and the files and texts handed to ``watch_file``/``watch_text`` (process logs, CLI
    stderr)."""
    scanner = LeakScanner()
    yield scanner
    leaks = scanner.leaks([("caplog", caplog.text)])
    assert not leaks, "tokens in log output: " + "; ".join(leaks)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Across the whole suite: a test whose captured log or stderr contains a token issued in this session
    (tests/tokens.py) fails, whatever it asserted itself. Process logs are scanned by ``token_leak_scanner``."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not tokens.ISSUED:
        return
    captured = report.caplog + report.capstderr
    leaked = [t[:8] for t in tokens.ISSUED if t in captured]
    if leaked and report.passed:
        report.outcome = "failed"
        report.longrepr = f"token(s) {', '.join(leaked)}... appeared in this test's log output"


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL (Debian's postgresql, a throwaway cluster on a loopback port, run as the postgres
    user) for the whole session; each test takes its own database (``state_backend``)."""
    from simulators.postgres import Postgres

    with Postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def state_backend(request, tmp_path):
    """The hub state backend, once per backend: SQLite files in tmp_path, or a fresh PostgreSQL database
    migrated as `dozor hub migrate` does. Yields a ``hub.repo.Backend``."""
    from hub.repo import Backend

    if request.param == "sqlite":
        yield Backend.sqlite(tmp_path)
        return
    server = request.getfixturevalue("postgres_server")
    backend = Backend.postgres(server.database(), password=server.password, state_dir=tmp_path)
    backend.migrate()
    yield backend
