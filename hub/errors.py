"""The hub's one error root. Errors from below (sqlite3, aiomqtt, pydantic) are converted at the boundary."""

from __future__ import annotations

from contract.errors import DozorError


class HubError(DozorError):
    """Root of every error the hub raises on purpose."""


class ConfigError(HubError):
    """The hub config or the zones file is wrong; the message says where and how to fix it."""


class StoreError(HubError):
    """The hub's SQLite state could not be read or written."""


class RequestError(HubError):
    """An API request was refused. ``code`` is short and stable (API error field); ``status`` the HTTP status."""

    code = "bad_request"
    status = 400

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class AlertError(RequestError):
    """An alert request or operation was refused."""

    code = "alert_error"


class UnknownZone(AlertError):
    code = "unknown_zone"


class NoTargets(AlertError):
    code = "no_targets"


class AlertNotFound(AlertError):
    code = "not_found"
    status = 404


class AlertStateError(AlertError):
    code = "bad_state"
    status = 409


class AlertConflict(AlertError):
    """The overlap policy refused it: a higher or equal alert holds sirens it would need (hub/alerts/policy.py)."""

    code = "overlap"
    status = 409


class NotAllowed(AlertError):
    """This person may not do this to this alert (self-confirmation, break glass without the role or reason)."""

    code = "forbidden"
    status = 403
