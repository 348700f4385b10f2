"""The virtual board (real MicroPython under Node on a pty) with plain mpremote and `dozor firmware`.

Fault cases: a wrong port, a board that does not answer, a hash mismatch after a copy, and a flash
interrupted by a vanished board; each gives a clear message, a non-zero exit, and a node that says
it is not configured.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial
from typer.testing import CliRunner

from dozor.cli import app
from firmware.tools.build import build
from simulators.board import VirtualBoard

MPREMOTE = [sys.executable, "-m", "mpremote"]


@pytest.fixture(scope="module")
def noise_build(tmp_path_factory, node_modules) -> Path:
    d = tmp_path_factory.mktemp("build") / "noise"
    build("noise", d)
    return d


def mpremote(port: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPREMOTE, "connect", port, *args], capture_output=True, text=True, timeout=60)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_plain_mpremote_works_and_files_survive_soft_reset(node_modules, tmp_path):
    src = tmp_path / "hello.py"
    src.write_text("X = 6 * 7\n")
    with VirtualBoard(tmp_path / "flash") as b:
        r = mpremote(b.port, "cp", str(src), ":hello.py", "+", "exec", "import hello; print(hello.X)",
                     "+", "ls", "+", "sha256sum", ":hello.py", "+", "soft-reset", "+", "cat", ":hello.py")
        assert r.returncode == 0, r.stderr
        assert "42" in r.stdout
        assert "10 hello.py" in r.stdout
        import hashlib
        assert hashlib.sha256(src.read_bytes()).hexdigest() in r.stdout
        assert r.stdout.rstrip().endswith("X = 6 * 7")
        assert (tmp_path / "flash" / "hello.py").read_text() == "X = 6 * 7\n"  # the "flash" is inspectable
        r = mpremote(b.port, "rm", ":hello.py", "+", "ls")
        assert r.returncode == 0 and "hello.py" not in r.stdout.split("rm :hello.py")[-1]
        r = mpremote(b.port, "exec", "raise ValueError('boom')")
        assert r.returncode == 1 and "ValueError: boom" in r.stdout + r.stderr
        assert "raw" in b.resets  # mpremote soft-resets in raw mode before its first command


def _read_until(ser: serial.Serial, needle: bytes, limit: int = 200) -> bytes:
    data = b""
    for _ in range(limit):
        data += ser.read(256)
        if needle in data:
            return data
    raise AssertionError(f"{needle!r} not seen in {data!r}")


def test_friendly_repl_over_the_pty(node_modules):
    with VirtualBoard() as b, serial.Serial(b.port, 115200, timeout=0.05) as ser:
        ser.write(b"\x03\x02")
        _read_until(ser, b">>> ")
        ser.write(b"1 + 2\r")
        assert b"3\r\n>>> " in _read_until(ser, b"3\r\n>>> ")
        ser.write(b"for i in range(3):\r    print(i * 10)\r\r")
        out = _read_until(ser, b"20\r\n>>> ")
        assert b"... " in out and b"0\r\n10\r\n20\r\n" in out
        ser.write(b"1/0\r")
        assert b"ZeroDivisionError" in _read_until(ser, b"ZeroDivisionError")
        ser.write(b"\x04")  # Ctrl-D: soft reset back to the banner
        assert b"soft reboot" in _read_until(ser, b"MicroPython v1.27.0")


def test_flash_then_doctor_end_to_end(noise_build, tmp_path):
    flash_dir = tmp_path / "flash"
    with VirtualBoard(flash_dir) as b:
        r = invoke("firmware", "flash", "--port", b.port, "--node", "noise", "--id", "N-017", "--zone", "Z-CENTRE",
                   "--cal-offset", "-0.35", "--build", str(noise_build), "--no-start", "--json")
        assert r.exit_code == 0, r.output
        res = json.loads(r.output)
        assert res["steps"] == ["files", "selftest"] and res["selftest"]["ok"] is True
        assert res["key"] == "<64 hex digits>"
        cfg = json.loads((flash_dir / "config.json").read_text())
        assert cfg["device_id"] == "N-017" and cfg["zone"] == "Z-CENTRE" and cfg["cal_offset_db"] == -0.35
        assert len(cfg["key"]) == 64
        assert not (flash_dir / ".flashing").exists()
        manifest = json.loads((noise_build / "manifest.json").read_text())
        for name in manifest["files"]:
            assert (flash_dir / name).read_bytes() == (noise_build / name).read_bytes()
        r = invoke("firmware", "doctor", "--port", b.port)
        assert r.exit_code == 0, r.output
        assert "RESULT: healthy" in r.output and "N-017 in zone Z-CENTRE" in r.output
        assert "[OK ] microphone" in r.output and "1 kHz test tone reads 94.00 dB" in r.output


def test_flash_start_runs_the_app_and_doctor_interrupts_it(noise_build, tmp_path):
    with VirtualBoard(tmp_path / "flash") as b:
        r = invoke("firmware", "flash", "--port", b.port, "--node", "noise", "--id", "N-018", "--zone", "Z",
                   "--build", str(noise_build), "--start")
        assert r.exit_code == 0, r.output
        for _ in range(100):  # wait for the hard reset (counts, not time, are asserted)
            if b.resets and b.resets[-1] == "boot":
                break
            time.sleep(0.05)
        assert b.resets[-1] == "boot"
        r = invoke("firmware", "doctor", "--port", b.port, "--json")
        assert r.exit_code == 0, r.output
        doc = json.loads(r.output)
        assert doc["ok"] is True and doc["boot"]["boots"] >= 1  # the app ran and counted its boot


def test_wrong_port(tmp_path):
    r = invoke("firmware", "flash", "--port", str(tmp_path / "ttyUSB9"), "--node", "noise", "--id", "N-1",
               "--zone", "Z", "--build", str(tmp_path / "b"))
    assert r.exit_code == 2
    assert "No serial port" in r.output and "Check the USB cable" in r.output
    r = invoke("firmware", "doctor", "--port", str(tmp_path / "ttyUSB9"))
    assert r.exit_code == 2 and "No serial port" in r.output


def test_board_that_does_not_answer(noise_build):
    with VirtualBoard(mute=True) as b:
        r = invoke("firmware", "flash", "--port", b.port, "--node", "noise", "--id", "N-1", "--zone", "Z",
                   "--build", str(noise_build), "--timeout", "1")
        assert r.exit_code == 3
        assert "does not answer" in r.output and "press its RESET button" in r.output
        r = invoke("firmware", "doctor", "--port", b.port, "--timeout", "1")
        assert r.exit_code == 3


def test_hash_mismatch_after_copy_leaves_node_marked_unfinished(noise_build, tmp_path):
    flash_dir = tmp_path / "flash"
    with VirtualBoard(flash_dir, fault_corrupt="levels.mpy") as b:
        r = invoke("firmware", "flash", "--port", b.port, "--node", "noise", "--id", "N-2", "--zone", "Z",
                   "--build", str(noise_build), "--no-start")
        assert r.exit_code == 5, r.output
        assert "step: verify hashes" in r.output
        assert "Hash mismatch after copying: levels.mpy (differs)" in r.output
        assert "NOT ready" in r.output
        assert (flash_dir / ".flashing").exists()
        assert not (flash_dir / "config.json").exists()
        r = invoke("firmware", "doctor", "--port", b.port)
        assert r.exit_code == 1
        assert "The last flash did not finish" in r.output


def test_interrupted_flash_is_reported_and_recoverable(noise_build, tmp_path):
    flash_dir = tmp_path / "flash"
    # the board vanishes after 12 commands of the session that follows the flash tool's reset
    with VirtualBoard(flash_dir, fault_die_after_execs=12) as b:
        r = invoke("firmware", "flash", "--port", b.port, "--node", "noise", "--id", "N-3", "--zone", "Z",
                   "--build", str(noise_build), "--no-start")
        assert r.exit_code == 4, r.output
        assert "Lost the connection to the node" in r.output and "step: copy" in r.output
        assert b.died
    marker = (flash_dir / ".flashing").read_text()
    assert marker.startswith("started")
    assert not (flash_dir / "config.json").exists()
    with VirtualBoard(flash_dir) as b:  # power back on: the node knows it is half-flashed
        r = invoke("firmware", "doctor", "--port", b.port)
        assert r.exit_code == 1
        assert "The last flash did not finish" in r.output and "NOT configured" in r.output
        r = invoke("firmware", "flash", "--port", b.port, "--node", "noise", "--id", "N-3", "--zone", "Z",
                   "--build", str(noise_build), "--no-start")
        assert r.exit_code == 0, r.output
        assert not (flash_dir / ".flashing").exists()


def test_air_node_flash_on_the_virtual_board(tmp_path):
    air = tmp_path / "air-build"
    build("air", air)
    with VirtualBoard(tmp_path / "flash") as b:
        r = invoke("firmware", "flash", "--port", b.port, "--node", "air", "--id", "A-001", "--zone", "Z",
                   "--build", str(air), "--no-start", "--json")
        assert r.exit_code == 0, r.output
        checks = {c["name"]: c for c in json.loads(r.output)["selftest"]["checks"]}
        assert checks["air sensors"]["detail"] == "BME280 at 0x76; SDS011 answered"
        assert not (tmp_path / "flash" / "noise_node.mpy").exists()


def test_flash_location_needs_both_coordinates(tmp_path):
    r = invoke("firmware", "flash", "--port", str(tmp_path / "ttyUSB9"), "--node", "noise", "--id", "N-1",
               "--zone", "Z", "--lat", "50.45")
    assert r.exit_code == 1 and "give both --lat and --lon" in r.output
    r = invoke("firmware", "flash", "--port", str(tmp_path / "ttyUSB9"), "--node", "noise", "--id", "N-1",
               "--zone", "Z", "--lat", "91", "--lon", "30")
    assert r.exit_code == 2 and "--lat" in r.output  # out of range: Typer's usage error
