"""Fixtures for firmware tests: the real MicroPython (npm WebAssembly port) with only the HAL stubbed."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from simulators.board import BoardError, node_modules_dir

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SRC = ROOT / "firmware" / "src"
STUB_HAL = HERE / "stub_hal"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    try:
        return node_modules_dir()
    except BoardError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def firmware_dir(tmp_path_factory) -> Path:
    """firmware/src with hal.py swapped for the stub (main.py and boot.py left out: tests import modules)."""
    d = tmp_path_factory.mktemp("fw")
    for f in SRC.glob("*.py"):
        if f.name not in ("hal.py", "main.py", "boot.py"):
            shutil.copy(f, d / f.name)
    shutil.copy(STUB_HAL / "hal.py", d / "hal.py")
    return d


class MicroPython:
    def __init__(self, node_modules: Path, firmware_dir: Path) -> None:
        self.node_modules = node_modules
        self.firmware_dir = firmware_dir

    def run(self, code: str, files: dict[str, bytes | str] | None = None, expect_error: bool = False,
            timeout: float = 120) -> str:
        with tempfile.TemporaryDirectory() as extra:
            for name, data in (files or {}).items():
                p = Path(extra) / name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data.encode() if isinstance(data, str) else data)
            code_file = Path(extra).parent / (Path(extra).name + "_code.py")
            code_file.write_text(code)
            try:
                proc = subprocess.run(
                    ["node", str(HERE / "mp_run.mjs"), str(self.node_modules), str(code_file),
                     str(self.firmware_dir), extra],
                    capture_output=True, timeout=timeout)
            finally:
                code_file.unlink()
        out = proc.stdout.decode(errors="replace")
        err = proc.stderr.decode(errors="replace")
        if expect_error:
            assert proc.returncode != 0, f"expected a MicroPython error, got output:\n{out}"
            return err
        assert proc.returncode == 0, f"MicroPython failed:\n{err}\n--- stdout ---\n{out}"
        return out

    def json(self, code: str, **kw) -> object:
        """Run code that prints one line 'RESULT <json>' and return the decoded value."""
        out = self.run(code, **kw)
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        assert lines, f"no RESULT line in output:\n{out}"
        return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture(scope="session")
def mpy(node_modules, firmware_dir) -> MicroPython:
    return MicroPython(node_modules, firmware_dir)
