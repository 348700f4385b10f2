"""The recording loudspeaker player."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import wave
from pathlib import Path

from simulators.speaker import read_played

SPEAKER = Path(__file__).resolve().parents[2] / "simulators" / "speaker.py"


def make_wav(path: Path, seconds: float = 0.25, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x01" * int(seconds * rate))
    return path


def test_records_what_it_played(tmp_path):
    wav = make_wav(tmp_path / "a.wav", 0.25)
    for extra in (["--no-wait"], []):
        rc = subprocess.run([sys.executable, str(SPEAKER), "--record", str(tmp_path / "rec"), str(wav), *extra],
                            capture_output=True, timeout=30)
        assert rc.returncode == 0, rc.stderr
    played = read_played(tmp_path / "rec")
    assert len(played) == 2
    assert played[0]["sha256"] == hashlib.sha256(wav.read_bytes()).hexdigest()
    assert played[0]["duration_s"] == 0.25 and played[0]["file"] == str(wav)


def test_missing_file_is_a_clear_error(tmp_path):
    rc = subprocess.run([sys.executable, str(SPEAKER), "--record", str(tmp_path), str(tmp_path / "nope.wav")],
                        capture_output=True, text=True, timeout=30)
    assert rc.returncode == 2 and "cannot play" in rc.stderr
    assert read_played(tmp_path) == []
