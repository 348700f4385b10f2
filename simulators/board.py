"""Virtual MicroPython board on a pty: the real MicroPython interpreter (npm WebAssembly port) under Node.

The board owns a pseudo-terminal. Hosts (mpremote, `dozor firmware flash/doctor`, a terminal) open its
slave path like a USB-serial port. Bytes are relayed to a Node process (``board_node.mjs``) that runs the
interpreter and its REPL (friendly, raw, raw-paste). Each reset restarts that process (soft reset in raw
or friendly mode, or a hard reset that runs boot.py and main.py); the board's filesystem lives in a host
folder (``flash_dir``) so it survives resets and can be inspected.

With ``uart_link`` the node's gateway UART (``machine.UART(2)``, what ``hal.link_uart`` opens) is a second
pty: the bytes the running firmware writes there (node_frame LEVELS, STATUS ...) come out on ``uart_port``
(and the symlink ``uart_link``), so a real gateway driver can read them. Like a real UART TX line, nothing
waits for a reader: bytes nobody takes are dropped (``uart_dropped``); what the gateway writes to the node
is read and discarded (``uart_ignored``: firmware v1 defines no gateway -> node commands).

Faults for tests: ``mute`` (nothing answers), ``fault_corrupt`` (the named file is damaged after it is
written), ``fault_die_after_execs`` (the board disappears after N commands, like a pulled cable).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import tempfile
import threading
import tty
from pathlib import Path

HERE = Path(__file__).resolve().parent
BRIDGE = HERE / "board_node.mjs"
ROM = HERE / "board_rom"
FIRMWARE_DIR = HERE.parent / "firmware"
WASM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
EXIT_MODES = {10: "raw", 11: "friendly", 12: "boot"}
EXIT_DIED = 13


class BoardError(Exception):
    """The virtual board cannot start (Node or the npm package missing) or stopped unexpectedly."""


def node_modules_dir() -> Path:
    """firmware/node_modules, with a clear error when `npm ci --prefix firmware` was not run."""
    nm = FIRMWARE_DIR / "node_modules"
    if not (nm / WASM_PACKAGE / "micropython.mjs").is_file():
        raise BoardError(f"the MicroPython WebAssembly interpreter is not installed ({nm / WASM_PACKAGE} missing): "
                         "run `npm ci --prefix firmware` once")
    if shutil.which("node") is None:
        raise BoardError("Node.js (`node`) is not on PATH: install Node.js 20 (Debian: apt-get install nodejs)")
    return nm


class VirtualBoard:
    """Context manager: ``with VirtualBoard() as b: mpremote connect b.port ...``."""

    def __init__(self, flash_dir: str | Path | None = None, *, mute: bool = False, link: str | Path | None = None,
                 fault_corrupt: str | None = None, fault_die_after_execs: int | None = None,
                 uart_link: str | Path | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if flash_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dozor-board-")
            flash_dir = self._tmp.name
        self.flash_dir = Path(flash_dir)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.mute = mute
        self.link = Path(link) if link else None
        self.fault_corrupt = fault_corrupt
        self.fault_die_after_execs = fault_die_after_execs
        self.port = ""
        self.uart_link = Path(uart_link) if uart_link else None
        self.uart_port = ""
        self.uart_sent = 0  # bytes the firmware wrote to its gateway UART and the pty took
        self.uart_dropped = 0
        self.uart_ignored = 0
        self._uart_master = self._uart_slave = self._uart_r = self._uart_w = -1
        self.resets: list[str] = []  # "raw" / "friendly" / "boot" per restart, for tests
        self.died = False
        self._master = -1
        self._slave = -1
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._node_modules = None if mute else node_modules_dir()

    # -- lifecycle --
    def start(self) -> VirtualBoard:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        if self.link:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            self.link.symlink_to(self.port)
        if self.uart_link is not None:
            self._uart_master, self._uart_slave = os.openpty()
            tty.setraw(self._uart_slave)
            os.set_blocking(self._uart_master, False)
            self.uart_port = os.ttyname(self._uart_slave)
            self._uart_r, self._uart_w = os.pipe()
            with contextlib.suppress(FileNotFoundError):
                self.uart_link.unlink()
            self.uart_link.symlink_to(self.uart_port)
        self._thread = threading.Thread(target=self._relay, name="virtual-board", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._uart_master, self._uart_slave, self._uart_r, self._uart_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1
        self._uart_master = self._uart_slave = self._uart_r = self._uart_w = -1
        for link in (self.link, self.uart_link):
            if link:
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> VirtualBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self) -> None:
        """Block until the board stops (used by `dozor sim board`)."""
        if self._thread is not None:
            self._thread.join()

    # -- the relay --
    def _spawn(self, mode: str) -> subprocess.Popen[bytes]:
        cmd = ["node", str(BRIDGE), "--node-modules", str(self._node_modules), "--flash", str(self.flash_dir),
               "--rom", str(ROM), "--mode", mode, "--reset-cause", "2" if mode == "boot" and self.resets else "1"]
        if self.fault_corrupt:
            cmd += ["--fault-corrupt", self.fault_corrupt]
        if self.fault_die_after_execs is not None:
            cmd += ["--fault-die-after-execs", str(self.fault_die_after_execs)]
        if self._uart_w >= 0:
            cmd += ["--uart-fd", str(self._uart_w)]
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                                pass_fds=(self._uart_w,) if self._uart_w >= 0 else ())

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def _relay(self) -> None:
        if self.mute:
            while not self._stop.is_set():
                r, _, _ = select.select([self._master], [], [], 0.2)
                if r:
                    with contextlib.suppress(OSError):
                        os.read(self._master, 4096)  # a board that does not answer
            return
        mode = "boot"
        while not self._stop.is_set():
            self._proc = proc = self._spawn(mode)
            assert proc.stdin is not None and proc.stdout is not None
            out_fd = proc.stdout.fileno()
            watch = [self._master, out_fd] + ([self._uart_r, self._uart_master] if self._uart_r >= 0 else [])
            while not self._stop.is_set():
                r, _, _ = select.select(watch, [], [], 0.2)
                if self._uart_r >= 0:
                    self._relay_uart(r)
                if out_fd in r:
                    data = os.read(out_fd, 65536)
                    if not data:
                        break
                    self._write_master(data)
                if self._master in r:
                    try:
                        data = os.read(self._master, 65536)
                    except OSError:
                        data = b""
                    if data:
                        try:
                            proc.stdin.write(data)
                        except BrokenPipeError:
                            pass  # the interpreter is restarting; the host retries or times out
            if self._stop.is_set():
                return
            code = proc.wait()
            if code in EXIT_MODES:
                mode = EXIT_MODES[code]
                self.resets.append(mode)
                continue
            self.died = code == EXIT_DIED
            # the board is gone: hang up the line so the host sees the port disappear
            with contextlib.suppress(OSError):
                os.close(self._master)
            with contextlib.suppress(OSError):
                os.close(self._slave)
            self._master = self._slave = -1
            return

    def _relay_uart(self, ready: list[int]) -> None:
        """Firmware -> gateway UART bytes onto the second pty (dropped when nobody reads, like a real TX line)."""
        if self._uart_r in ready:
            data = os.read(self._uart_r, 65536)
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._uart_master, view)
                except (BlockingIOError, OSError):
                    self.uart_dropped += len(view)
                    break
                self.uart_sent += n
                view = view[n:]
        if self._uart_master in ready:
            try:
                self.uart_ignored += len(os.read(self._uart_master, 4096))
            except OSError:  # EIO: no process has the gateway side open right now
                pass

    def _write_master(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                select.select([], [self._master], [], 1.0)
                continue
            view = view[n:]
