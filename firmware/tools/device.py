"""A MicroPython node on a serial port, through mpremote's transport, with technician-readable errors."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from firmware.tools.errors import ConnectionLostError, FirmwareError, NoAnswerError, PortError

CONNECT_TIMEOUT_S = 5


def _ports_seen() -> str:
    try:
        from serial.tools import list_ports
        names = [p.device for p in list_ports.comports()]
    except (ImportError, OSError):  # listing ports is only a hint in an error message
        names = []
    return ", ".join(names) if names else "none"


class Node:
    """Open with ``Node.connect(port)``; every call maps transport failures to FirmwareError subclasses."""

    def __init__(self, port: str, transport) -> None:
        self.port = port
        self.t = transport
        self.step = "connect"
        self.close_error: str | None = None

    @classmethod
    def connect(cls, port: str, timeout_s: float = CONNECT_TIMEOUT_S, soft_reset: bool = True) -> Node:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        if not port.startswith(("socket://", "rfc2217://")) and not os.path.exists(port):
            raise PortError(f"No serial port {port}. Check the USB cable and the port name "
                            f"(ports seen on this computer: {_ports_seen()}).", step="connect")
        try:
            t = SerialTransport(port, baudrate=115200)
        except (TransportError, OSError) as e:
            raise PortError(f"Cannot open {port}: {e}. Another program (a serial monitor, another "
                            "mpremote) may be using it: close it and try again.", step="connect") from e
        # mpremote reads ptys (QEMU, the virtual board) with blocking 1-byte reads; without a read timeout
        # a silent port would hang forever instead of hitting the connect timeout
        t.serial.timeout = 1.0
        node = cls(port, t)
        try:
            t.enter_raw_repl(soft_reset=soft_reset, timeout_overall=timeout_s)
        except Exception as e:  # TransportError, SerialException, OSError: all mean "no answer"
            node.close()
            raise NoAnswerError(
                f"The node on {port} does not answer (no MicroPython prompt within {timeout_s:g} s). "
                "Check that it has power (LED on), press its RESET button and try again; if it never "
                "answers, it may have no MicroPython yet: flash with --micropython-image.",
                step="connect") from e
        return node

    def close(self) -> None:
        try:
            self.t.close()
        except OSError:  # a port that vanished cannot reset RTS/DTR; closing the file is all that is left
            try:
                self.t.serial.close()
            except OSError as e:
                self.close_error = str(e)

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lost(self, e: BaseException) -> ConnectionLostError:
        return ConnectionLostError(f"Lost the connection to the node on {self.port} during '{self.step}' "
                                   f"({type(e).__name__}: {e}). Check the cable and power.", step=self.step)

    def run(self, code: str) -> str:
        """Execute code; return its stdout; a Python error on the node becomes FirmwareError."""
        from mpremote.transport import TransportExecError
        try:
            return self.t.exec(code).decode(errors="replace")
        except TransportExecError as e:
            raise FirmwareError(f"The node reported an error during '{self.step}': "
                                f"{e.error_output.strip().splitlines()[-1]}", step=self.step) from e
        except Exception as e:  # serial failures, timeouts: the line to the node is gone
            raise self._lost(e) from e

    def eval_json(self, expr: str) -> object:
        out = self.run(f"import json\nprint(json.dumps({expr}))")
        return json.loads(out.strip().splitlines()[-1])

    def write_file(self, path: str, data: bytes) -> None:
        from mpremote.transport import TransportExecError
        try:
            self.t.fs_writefile(path, data)
        except (TransportExecError, OSError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise FirmwareError(f"The node refused to write {path}: {os.strerror(e.errno)} "
                                    "(flash full or damaged?)", step=self.step) from e
            raise self._lost(e) from e
        except Exception as e:
            raise self._lost(e) from e

    def sha256(self, path: str) -> str | None:
        from mpremote.transport import TransportExecError
        try:
            return self.t.fs_hashfile(path, "sha256").hex()
        except OSError:
            return None  # missing on the node
        except TransportExecError as e:
            raise FirmwareError(f"Could not hash {path} on the node: {e.error_output.strip()}",
                                step=self.step) from e
        except Exception as e:
            raise self._lost(e) from e

    def read_text(self, path: str) -> str | None:
        try:
            return self.t.fs_readfile(path).decode(errors="replace")
        except OSError:
            return None
        except Exception as e:
            raise self._lost(e) from e

    def listdir(self) -> list[str]:
        return list(self.eval_json("[e[0] for e in __import__('os').ilistdir('/') if e[1] == 0x8000]"))

    def hard_reset_and_reconnect(self, settle_s: float = 1.0, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        """machine.reset(), then enter the raw REPL again (stops a running app and its watchdog)."""
        try:
            self.t.exec_raw_no_follow("import machine\nmachine.reset()")
        except Exception as e:
            raise self._lost(e) from e
        time.sleep(settle_s)
        try:
            self.t.serial.reset_input_buffer()
            self.t.enter_raw_repl(soft_reset=True, timeout_overall=timeout_s)
        except Exception as e:
            raise NoAnswerError(f"The node on {self.port} did not come back after a reset "
                                f"({type(e).__name__}). Press RESET and try again.", step=self.step) from e


def read_build_file(folder: Path, name: str) -> bytes:
    try:
        return (folder / name).read_bytes()
    except OSError as e:
        raise FirmwareError(f"cannot read {folder / name}: {e}") from e
