"""The token-leak scanner can fail: a token that reaches a log line is found, wherever it was written."""

from __future__ import annotations

import logging

from tests.leaks import LeakScanner
from tests.tokens import record


def test_the_scanner_finds_a_token_in_any_watched_output(tmp_path):
    token = record("dzr_000000000000_" + "L" * 43)
    scanner = LeakScanner()
    log = tmp_path / "hub.log"
    log.write_text("INFO all quiet\n")
    scanner.watch_file(log)
    scanner.watch_text("stderr", "nothing here")
    assert scanner.leaks([("caplog", "")]) == []
    log.write_text(f"WARNING created token {token}\n")
    assert scanner.leaks([("caplog", "")]) == [f"{log}: contains token dzr_0000..."]
    assert "caplog: contains token dzr_0000..." in scanner.leaks([("caplog", f"x {token} y")])


def test_hub_logs_carry_no_token_on_failed_logins(tmp_path, caplog, token_leak_scanner):
    """Refusals log names and reasons, never the presented token (the scanner fixture checks caplog)."""
    caplog.set_level(logging.DEBUG)
    logging.getLogger("hub").info("refused a token for user %s", "alice")
