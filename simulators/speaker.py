"""A loudspeaker "player" that records what it played, for tests and the simulated city.

Use it as the gateway's player command instead of ``aplay``:

    python -m simulators.speaker --record DIR FILE [--no-wait]

It appends one JSON line ``{sha256, duration_s, file, ts}`` to ``DIR/played.jsonl`` (WAV duration read
with the ``wave`` module; 0 for other formats), then sleeps for the duration unless ``--no-wait``.
Exit codes: 0 played, 2 bad arguments or unreadable file. SIGTERM (the gateway's stop) ends it at once.
Standard library only, so it also runs as a plain script path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import wave
from pathlib import Path


def wav_duration(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            return w.getnframes() / rate if rate else 0.0
    except (wave.Error, EOFError):
        return 0.0


def play(file: Path, record: Path, *, wait: bool = True) -> dict:
    data = file.read_bytes()
    entry = {"sha256": hashlib.sha256(data).hexdigest(), "duration_s": round(wav_duration(file), 3),
             "file": str(file), "ts": time.time()}
    record.mkdir(parents=True, exist_ok=True)
    with open(record / "played.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")
    if wait and entry["duration_s"] > 0:
        time.sleep(entry["duration_s"])
    return entry


def read_played(record: Path) -> list[dict]:
    """What the simulated speaker played so far (tests use this)."""
    path = record / "played.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simulators.speaker", description=__doc__.splitlines()[0])
    parser.add_argument("--record", required=True, type=Path, help="directory for played.jsonl")
    parser.add_argument("--no-wait", action="store_true", help="return at once instead of playing in real time")
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        play(args.file, args.record, wait=not args.no_wait)
    except OSError as exc:
        print(f"speaker: cannot play {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
