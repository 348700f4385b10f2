"""The gateway's error root. Errors from below (pymodbus, serial, aiomqtt, sqlite) are converted here."""

from __future__ import annotations

from contract.errors import DozorError


class GatewayError(DozorError):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The config file is unusable. The message names the file, the key path and what is allowed."""

    def __init__(self, file: str, problems: list[str], details: list | None = None) -> None:
        self.file = file
        self.problems = problems
        self.details = details or []  # runtime.configcheck.Problem: file, key, line, message
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{file}: {len(problems)} problem(s) in the gateway config:\n{lines}")


class BusError(GatewayError):
    """A bus request failed (port gone, no answer, exception response)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}{': ' + detail if detail else ''}")


class DeviceFailure(GatewayError):
    """A device could not do what it was asked. ``reason`` goes into the failed ack."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}{': ' + detail if detail else ''}")


class ReplayStoreError(GatewayError):
    pass
