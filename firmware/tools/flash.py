"""`dozor firmware flash`: (esptool) image, (mpremote) files + config, then verify hashes and self-test.

Order of steps, so that an interruption never leaves a node that looks configured:
  1. write the marker /.flashing (the app sees it at boot, stays out of the way, and doctor reports it);
  2. hard-reset so a running app (and its hardware watchdog) stops, reconnect;
  3. remove files of an older build, copy the new files, read every hash back;
  4. write manifest.json and config.json, clear the boot counter;
  5. remove the marker, soft-reset, run the node's self-test over the port;
  6. optionally hard-reset to start the application.
Any failure raises a FirmwareError naming the step; the marker stays until step 5, so a half-flashed node
says so on its own (boot message, STATUS error bit) and in `dozor firmware doctor`.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from firmware.tools import build as fwbuild
from firmware.tools.device import Node
from firmware.tools.errors import FirmwareError, VerifyError

MARKER = "/.flashing"
KEEP = {"config.json", "bootstate.json", ".flashing"}
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


@dataclass
class FlashResult:
    port: str
    node: str
    device_id: str
    zone: str
    version: str
    key: str
    files: int
    selftest: dict = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)

    def public(self) -> dict:
        d = dict(self.__dict__)
        d["key"] = f"<{len(self.key)} hex digits>"
        return d


def check_args(device_id: str, zone: str, key: str | None, cal_offset_db: float) -> None:
    for label, v in (("--id", device_id), ("--zone", zone)):
        if not NAME_RE.match(v):
            raise FirmwareError(f"{label} {v!r}: use 1-32 letters, digits, '-', '_' or '.' (e.g. N-017)")
    if key is not None and not re.fullmatch(r"[0-9a-f]{64}", key):
        raise FirmwareError("--key must be 64 lowercase hex digits (32 bytes); leave it out to generate one")
    if not -20.0 <= cal_offset_db <= 20.0:
        raise FirmwareError(f"--cal-offset {cal_offset_db}: expected -20..+20 dB (from a 94 dB calibrator check)")


def write_image(port: str, image: Path, baud: int = 460800) -> None:
    """esptool write-flash of a MicroPython image (ESP32: offset 0x1000)."""
    if not image.is_file():
        raise FirmwareError(f"MicroPython image {image} not found", step="write image")
    cmd = [sys.executable, "-m", "esptool", "--port", port, "--baud", str(baud), "write-flash", "0x1000", str(image)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        text = (proc.stdout + proc.stderr).strip().splitlines()
        last = next((ln for ln in reversed(text) if ln.strip()), "no output")
        raise FirmwareError(f"esptool could not write the MicroPython image to {port}: {last}. Hold BOOT, "
                            "tap RESET, release BOOT (download mode) and try again.", step="write image")


def flash(port: str, node: str, device_id: str, zone: str, *, key: str | None = None, cal_offset_db: float = 0.0,
          image: Path | None = None, build_dir: Path | None = None, start: bool = True,
          connect_timeout_s: float = 5.0, progress: Callable[[str], None] = lambda s: None) -> FlashResult:
    check_args(device_id, zone, key, cal_offset_db)
    fwbuild.modules_for(node)
    if build_dir is not None and (Path(build_dir) / fwbuild.MANIFEST).is_file():
        b = fwbuild.load(Path(build_dir))
        if b.node != node:
            raise FirmwareError(f"build folder {build_dir} holds a {b.node} build, not {node}: build again")
    else:
        b = fwbuild.build(node, Path(build_dir) if build_dir else Path("build") / f"firmware-{node}")
    key = key or secrets.token_hex(32)
    result = FlashResult(port, node, device_id, zone, b.version, key, len(b.files))
    if image is not None:
        progress("writing the MicroPython image with esptool")
        write_image(port, Path(image))
        result.steps.append("image")
    progress(f"connecting to {port}")
    with Node.connect(port, timeout_s=connect_timeout_s) as n:
        n.step = "mark flash in progress"
        n.run(f"f=open({MARKER!r},'w')\nf.write('started: copying files')\nf.close()")
        n.step = "restart the node"
        progress("restarting the node (stops the running app and its watchdog)")
        n.hard_reset_and_reconnect(timeout_s=connect_timeout_s)
        n.step = "remove old files"
        for name in n.listdir():
            if name not in b.files and name not in KEEP and name != fwbuild.MANIFEST:
                n.run(f"import os\nos.remove({'/' + name!r})")
        n.run("import os\ntry:\n os.remove('/manifest.json')\nexcept OSError:\n pass")
        for i, name in enumerate(sorted(b.files), 1):
            n.step = f"copy {name} ({i}/{len(b.files)})"
            progress(n.step)
            n.write_file("/" + name, (b.folder / name).read_bytes())
        n.step = "verify hashes"
        progress("reading every file's hash back from the node")
        bad = []
        for name, digest in sorted(b.files.items()):
            got = n.sha256("/" + name)
            if got != digest:
                bad.append(f"{name} ({'missing' if got is None else 'differs'})")
        if bad:
            raise VerifyError(f"Hash mismatch after copying: {', '.join(bad)}. The copy on the node is damaged "
                              "(flash wear, a bad cable or a brown-out). The node is NOT ready and stays in "
                              "maintenance mode: run the same flash command again; if it fails twice, replace "
                              "the board.", step=n.step)
        n.step = "write manifest and config"
        progress("writing manifest.json and config.json")
        n.write_file("/manifest.json", (b.folder / fwbuild.MANIFEST).read_bytes())
        cfg = {"device_id": device_id, "zone": zone, "node": node, "key": key, "cal_offset_db": cal_offset_db}
        n.write_file("/config.json.tmp", json.dumps(cfg).encode())
        n.run("import os\nos.rename('/config.json.tmp', '/config.json')\n"
              "try:\n os.remove('/bootstate.json')\nexcept OSError:\n pass")
        n.step = "finish"
        n.run(f"import os\nos.remove({MARKER!r})")
        result.steps.append("files")
        n.step = "self-test"
        progress("running the node's self-test")
        n.t.enter_raw_repl(soft_reset=True, timeout_overall=connect_timeout_s)
        result.selftest = run_selftest(n)
        if not result.selftest.get("ok"):
            failed = [c for c in result.selftest.get("checks", []) if not c.get("ok")]
            raise VerifyError("Files and config are written, but the self-test failed: "
                              + "; ".join(f"{c['name']}: {c['detail']}" for c in failed), step="self-test")
        result.steps.append("selftest")
        if start:
            progress("starting the node application")
            n.step = "start"
            n.t.exec_raw_no_follow("import machine\nmachine.reset()")
            result.steps.append("started")
    return result


def run_selftest(n: Node, hardware: bool = True) -> dict:
    out = n.run(f"import selftest\nselftest.main(hardware={hardware})")
    for line in reversed(out.splitlines()):
        if line.startswith("SELFTEST "):
            return json.loads(line[len("SELFTEST "):])
    raise FirmwareError(f"the node's self-test printed no result: {out.strip()[-200:]!r}", step="self-test")
