"""Errors of hub.residents, under the hub's root; errors from below are converted at the boundary."""

from __future__ import annotations

from hub.errors import ConfigError as HubConfigError
from hub.errors import HubError


class ResidentsError(HubError):
    """Root of every error hub.residents raises on purpose (under the hub's one root, HubError)."""


class ConfigError(ResidentsError, HubConfigError):
    """A shelters/zones/channel configuration is invalid. The message says where and why."""


class ChannelError(ResidentsError):
    """A channel could not deliver. ``reason`` is short and safe as a counter label."""

    def __init__(self, channel: str, reason: str, detail: str = "", *, retryable: bool = True,
                 retry_after: float | None = None) -> None:
        self.channel = channel
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(f"{channel}: {reason}{': ' + detail if detail else ''}")


class CapError(ResidentsError):
    """A CAP 1.2 document could not be parsed, validated or rendered. ``reason`` is a counter label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"CAP: {reason}{': ' + detail if detail else ''}")
