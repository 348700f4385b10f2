"""One error root for the firmware tools."""

from __future__ import annotations


class FirmwareError(Exception):
    """A problem a technician can act on. ``str(e)`` is the whole message; ``step`` names where it happened."""

    exit_code = 1

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class PortError(FirmwareError):
    """The serial port does not exist or cannot be opened."""

    exit_code = 2


class NoAnswerError(FirmwareError):
    """The port opened but no MicroPython REPL answered."""

    exit_code = 3


class ConnectionLostError(FirmwareError):
    """The node stopped answering in the middle of a step (cable pulled, power lost, reset)."""

    exit_code = 4


class VerifyError(FirmwareError):
    """Files on the node differ from the build (hash mismatch) or the self-test failed."""

    exit_code = 5
