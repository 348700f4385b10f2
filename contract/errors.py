"""One error root for the whole project; each layer converts errors from below at its boundary."""

from __future__ import annotations

from enum import StrEnum


class DozorError(Exception):
    """Root of every error dozor raises on purpose."""


class ContractError(DozorError):
    """Something on the wire does not follow the contract."""


class MalformedMessage(ContractError):
    """A payload could not be decoded or validated.

    ``topic`` and ``reason`` are short and safe to log and to use as a counter label.
    """

    def __init__(self, reason: str, *, topic: str | None = None, detail: str = "") -> None:
        self.reason = reason
        self.topic = topic
        self.detail = detail
        where = f" on {topic}" if topic else ""
        super().__init__(f"malformed message{where}: {reason}{': ' + detail if detail else ''}")


class RejectReason(StrEnum):
    """Why a gateway refused a command. Every refusal is acked with one of these and counted."""

    MALFORMED = "malformed"  # not a compact JWS, bad base64/JSON, missing or ill-typed claims
    UNKNOWN_KEY = "unknown_key"  # kid not among the pinned hub keys
    BAD_SIGNATURE = "bad_signature"  # signature does not verify (forged or tampered)
    BAD_ALGORITHM = "bad_algorithm"  # anything but EdDSA
    WRONG_AUDIENCE = "wrong_audience"  # addressed to another gateway
    EXPIRED = "expired"  # exp <= now
    NOT_YET_VALID = "not_yet_valid"  # iat too far in the future (clock skew beyond leeway)
    LIFETIME_TOO_LONG = "lifetime_too_long"  # exp - iat beyond the contract maximum
    REPLAYED = "replayed"  # jti seen before
    ISSUED_BEFORE_RESTART = "issued_before_restart"  # issued before an unclean gateway restart (see gateway/replay)
    BEFORE_FLOOR = "before_floor"  # issued before this gateway's state dir existed (replay after state loss)
    UNKNOWN_TARGET = "unknown_target"  # a target device is not attached to this gateway
    UNSUPPORTED = "unsupported"  # action not supported by the target device kind
    BUSY = "busy"  # a higher-priority activation holds the device


class CommandRejected(ContractError):
    """A command failed verification. ``reason`` is the code that goes into the rejected ack."""

    def __init__(self, reason: RejectReason, detail: str = "", *, jti: str | None = None,
                 alert: str | None = None) -> None:
        self.reason = RejectReason(reason)
        self.detail = detail
        self.jti = jti
        self.alert = alert
        super().__init__(f"command rejected: {self.reason.value}{': ' + detail if detail else ''}")
