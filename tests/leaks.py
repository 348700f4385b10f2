"""The token-leak scanner behind the ``token_leak_scanner`` fixture (tests/conftest.py).

A test hands it every log it produced (hub process log files, CLI stderr, anything else) with ``watch_file`` /
``watch_text``; at teardown the fixture scans those and everything the test logged in-process (caplog) for every
token issued in this test session (tests/tokens.py ``ISSUED``, plus ``issued()`` here). A token in a log line
fails the test, naming where."""

from __future__ import annotations

from pathlib import Path

from tests import tokens


class LeakScanner:
    def __init__(self) -> None:
        self.files: list[Path] = []
        self.texts: list[tuple[str, str]] = []

    def issued(self, token: str) -> str:
        return tokens.record(token)

    def watch_file(self, path: Path) -> Path:
        self.files.append(Path(path))
        return path

    def watch_text(self, where: str, text: str) -> str:
        self.texts.append((where, text))
        return text

    def leaks(self, extra: list[tuple[str, str]] = ()) -> list[str]:
        sources = [*self.texts, *extra]
        for path in self.files:
            if path.exists():
                sources.append((str(path), path.read_text(errors="replace")))
        found = []
        for where, text in sources:
            for token in tokens.ISSUED:
                if token in text:
                    found.append(f"{where}: contains token {token[:8]}...")
        return found

    def scanned_bytes(self) -> int:
        return sum(len(t) for _, t in self.texts) + sum(p.stat().st_size for p in self.files if p.exists())
